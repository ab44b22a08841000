"""The measurement plan: built once from the request, its budgets each with one meaning, the
memory a configuration may plan with held under the user's memory budget."""

from autotune import api
from autotune.backend_api import RunConfig
from autotune.measure.plan import MeasurementBudget, MeasurementPlan
from autotune.model.stats import reference_models

GIB = 2**30


def test_the_memory_budget_is_bytes_and_zero_means_none():
    assert MeasurementBudget.from_request(memory_gb=1.5).memory_bytes == 1.5 * GIB
    assert MeasurementBudget.from_request(memory_gb=0).memory_bytes is None
    assert MeasurementBudget.from_request().memory_bytes is None


def _plan(facts, memory_gb=None):
    proposed = api.recommend(gpu="A100 80GB", model="resnet18")
    return MeasurementPlan(proposed=proposed, model=None, stats=reference_models()["resnet18"],
                           facts=facts, optimizer="adam", latency_budget_ms=30.0,
                           budget=MeasurementBudget.from_request(memory_gb=memory_gb))


GPU_FACTS = {"gpu.count": 1, "gpu.free_vram_gb": 79.0, "host.ram_gb": 64}


def test_a_gpu_plan_stays_within_the_memory_budget_and_its_largest_batch_with_it():
    config = RunConfig("infer", "fp16", 8, 224)
    free, budgeted = _plan(GPU_FACTS), _plan(GPU_FACTS, memory_gb=1)
    assert budgeted.usable_bytes == GIB < free.usable_bytes
    # The largest batch (what a compiled runtime sizes its engine for) follows the budget.
    assert 0 < budgeted.largest_batch(config) < free.largest_batch(config)


def test_a_cpu_plan_has_half_the_ram_unless_the_budget_is_smaller():
    cpu = {"gpu.count": 0, "host.ram_gb": 16}
    assert _plan(cpu).usable_bytes == 8 * GIB
    assert _plan(cpu, memory_gb=2).usable_bytes == 2 * GIB


def test_the_api_builds_the_plan_from_the_request():
    assert api.measurement_plan().stats.name == "resnet18"  # verify's and bench's default model
    plan = api.measurement_plan("resnet18", batch_size=4, budget=MeasurementBudget(backend_s=12))
    assert plan.stats.name == "resnet18" and plan.budget.backend_s == 12
    assert "batch_size" in plan.user_fixed and plan.proposed.settings["batch_size"] == 4
    assert plan.task == "infer" and plan.options_for("torch") == {}
