"""The Python API: what every command does, callable without click.

The CLI, the import hook and a Ray worker all call these functions. Each takes the same
settings the commands take — as keyword arguments (``task="train"``, ``batch_size=8``,
``precision="fp16"``, ``torch={"channels_last": False}``) — layered over the same
config files (the user's ``autotune.toml``, this folder's ``pyproject.toml``,
``autotune.yaml`` and ``autotune.toml``, then ``config=FILE``); see :mod:`autotune.config`.
They return typed results and raise typed errors (:mod:`autotune.errors`): ``UserError``
for bad input, ``DoesNotFit``, ``NoBackend``, and ``Interrupted`` carrying what was
measured before Ctrl-C. Nothing here prints or exits.

    >>> import autotune
    >>> recommendation = autotune.recommend(model="resnet50", task="train", gpu="t4")
    >>> recommendation.settings["precision"], recommendation.settings["batch_size"]
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from autotune.config import VERIFY_BUDGET_S, Request, build_request, model_setting
from autotune.errors import DoesNotFit, Interrupted, NoBackend, UserError
from autotune.recommendation.facts import machine_facts
from autotune.recommendation.formats import check_writable
from autotune.types import Machine, Recommendation

if TYPE_CHECKING:  # the measuring modules load only when something is measured
    from autotune.measure.bench import BenchResult
    from autotune.measure.plan import MeasurementBudget, MeasurementPlan
    from autotune.measure.verify_report import Verification
    from autotune.recommendation.compare import Comparison
    from autotune.recommendation.engine import ModelRequest

WHERE = "by argument"


def probe(gpu: str | Sequence[str] = (), replay: str | Path | None = None) -> Machine:
    """This machine; a simulated one with ``gpu`` names from the spec database; or the
    machine recorded in ``replay`` (``autotune probe --record``)."""
    from autotune.hardware.host import probe_host  # noqa: PLC0415
    from autotune.hardware.probe import probe as probe_nvml  # noqa: PLC0415

    names = [gpu] if isinstance(gpu, str) else list(gpu)
    if names:
        from autotune.hardware import gpu_database as gpudb  # noqa: PLC0415

        return gpudb.simulate(names, probe_host())
    if replay is not None:
        from autotune.hardware.nvml_recording import RecordedNvml  # noqa: PLC0415

        return probe_nvml(RecordedNvml.from_file(Path(replay)))
    return probe_nvml()


def settings_request(settings: Mapping[str, Any], config: str | Path | None = None,
                     where: str = WHERE, default_model: str | None = None) -> Request:
    """The layered settings every function starts from: config files, then ``config``,
    then ``settings`` (reported as set ``where``)."""
    request = build_request(Path(config) if config is not None else None, dict(settings), where=where)
    if default_model and "model" not in request.model:
        request.model["model"] = default_model
    return request


def model_request(request: Request) -> ModelRequest | None:
    """The memory model's :class:`~autotune.recommendation.engine.ModelRequest` for the request's
    model, or None."""
    if "model" not in request.model:
        for key in request.model:
            raise UserError(f"{key} needs a model; add --model (or `model =` in the config)")
        return None
    from autotune.model.source import model_stats_for, parse_model  # noqa: PLC0415
    from autotune.recommendation.engine import ModelRequest, default_model_options  # noqa: PLC0415

    settings = request.model
    source = parse_model(settings["model"], settings.get("input_shape"), settings.get("input_spec"))
    options = default_model_options() | {
        key: settings[key] for key in ("optimizer", "latency_budget_ms", "headroom") if key in settings
    }
    return ModelRequest(stats=model_stats_for(source), source=source, **options)


def _measured_model(request: Request) -> ModelRequest:
    """The model a measurement runs: the request's (its settings default to one)."""
    chosen = model_request(request)
    if chosen is None:
        raise UserError("measuring needs a model; add --model (or `model =` in the config)")
    return chosen


def _recommend(machine: Machine, request: Request, model, **measured: Any) -> Recommendation:
    from autotune import plugins  # noqa: PLC0415
    from autotune.recommendation.engine import recommend as make_recommendation  # noqa: PLC0415

    return make_recommendation(machine, request.inputs, request.overrides, plugins.plugin_rules(), model,
                               **measured)


def recommend_for(machine: Machine, *, where: str = WHERE, **settings: Any) -> Recommendation:
    """The rules' recommendation for a machine already in hand (a planned host, this machine
    as the import hook probed it), with the project's config files under ``settings``."""
    request = settings_request(settings, None, where)
    return _recommend(machine, request, model_request(request))


def recommend(model: str | None = None, *, config: str | Path | None = None, gpu: str | Sequence[str] = (),
              replay: str | Path | None = None, where: str = WHERE, **settings: Any) -> Recommendation:
    """How to run ``model`` (or any model) on this machine, a simulated ``gpu``, or a
    ``replay``-ed one, with every decision's rule, source and reason."""
    request = settings_request({"model": model, "gpu": gpu, **settings}, config, where)
    return _recommend(probe(request.gpus, replay), request, model_request(request))


def inspect(model: str, *, input_shape: str | None = None, input_spec: str | None = None,
            resolution: int | None = None,
            optimizer: str | None = None, gpu: str | Sequence[str] = (),
            replay: str | Path | None = None, where: str = WHERE) -> dict[str, Any]:
    """What ``model`` costs — parameters, FLOPs, activation memory, lightweight verdict —
    and, with a GPU, its memory limits and roofline there (plain values)."""
    from autotune.model.source import model_stats_for, parse_model  # noqa: PLC0415
    from autotune.recommendation.engine import default_model_options  # noqa: PLC0415
    from autotune.recommendation.inspect_report import inspection  # noqa: PLC0415

    options = default_model_options()
    if optimizer is not None:
        options["optimizer"] = model_setting("optimizer", optimizer, where)
    stats = model_stats_for(parse_model(model, input_shape, input_spec))
    return inspection(stats, probe(gpu, replay), resolution, options["optimizer"], options["headroom"])


def compare(model: str, gpus: str | Sequence[str], *, task: str = "infer",
            precisions: str | Sequence[str] | None = None, batch_size: int | None = None,
            input_shape: str | None = None, input_spec: str | None = None, resolution: int | None = None,
            optimizer: str | None = None, headroom: float | None = None,
            prices: str | Path | Mapping[str, float] | None = None, plot: str | Path | None = None,
            where: str = WHERE) -> Comparison:
    """``model`` on each of ``gpus`` (spec database names), by the rules only: per precision
    the largest batch that fits and each runtime's calibrated predicted samples/s and batch-1
    latency (or why none), per watt and per dollar (``prices``: a YAML/CSV file or a mapping
    of GPU name to $/hour), best first; with ``plot``, a PNG bar chart there."""
    from autotune.hardware import gpu_database as gpudb  # noqa: PLC0415
    from autotune.model.source import model_stats_for, parse_model  # noqa: PLC0415
    from autotune.recommendation import compare as comparing  # noqa: PLC0415
    from autotune.recommendation.engine import default_model_options  # noqa: PLC0415
    from autotune.recommendation.prices import check_prices, read_prices  # noqa: PLC0415

    names = [gpus] if isinstance(gpus, str) else list(gpus)
    if not names:
        raise UserError("compare needs GPUs; add --gpu NAME for each (autotune gpus lists them)")
    specs = [gpudb.resolve(name) for name in names]
    if plot is not None:
        from autotune.recommendation.compare_plot import check_plot  # noqa: PLC0415

        check_plot(Path(plot))
    price_table = check_prices(prices) if isinstance(prices, Mapping) else \
        read_prices(Path(prices)) if prices is not None else {}
    options = default_model_options()
    for key, value in (("optimizer", optimizer), ("headroom", headroom)):
        if value is not None:
            options[key] = model_setting(key, value, where)
    if isinstance(precisions, str):
        precisions = [precision.strip() for precision in precisions.split(",") if precision.strip()]
    request = comparing.CompareRequest(
        task=task, precisions=tuple(precisions or ()), batch_size=batch_size, resolution=resolution,
        optimizer=options["optimizer"], headroom=options["headroom"], prices=price_table)
    stats = model_stats_for(parse_model(model, input_shape, input_spec))
    comparison = comparing.compare(stats, specs, request)
    if plot is not None:
        from autotune.recommendation.compare_plot import plot as draw  # noqa: PLC0415

        draw(comparison, Path(plot))
    return comparison


def verify(model: str | None = None, *, backends: str | Sequence[str] | None = None,
           budget_s: float = VERIFY_BUDGET_S, inputs: str | Path | None = None,
           accuracy_budget: float | None = None, memory_budget_gb: float | None = None,
           config: str | Path | None = None, where: str = WHERE,
           on_measurement: Callable[[Any], None] | None = None,
           on_backend: Callable[[str], None] | None = None, **settings: Any) -> Verification:
    """Apply the recommendation with each backend (``backends``: names, ``"all"``, or None
    for the recommendation's order), measure it on this machine within ``budget_s`` of wall
    time per backend (its runner, model build or export, and every measurement included;
    the model's stats are read once before, outside it), and let measurement decide.
    ``on_measurement`` sees each measurement as it lands, ``on_backend`` each backend's
    name as it starts. A backend whose budget cannot cover the recommended configuration
    once is skipped and says how much it needs; when no backend measured, that is a
    :class:`NoBackend` with the budget to ask for."""
    from autotune import plugins  # noqa: PLC0415
    from autotune.measure import decisions as measuring  # noqa: PLC0415
    from autotune.measure import verify as verifying  # noqa: PLC0415
    from autotune.measure.claims import with_claims  # noqa: PLC0415
    from autotune.measure.measurement import Outcome  # noqa: PLC0415
    from autotune.measure.plan import MeasurementBudget  # noqa: PLC0415
    from autotune.measure.verify_report import Verification  # noqa: PLC0415

    budget = MeasurementBudget.from_request(backend_s=budget_s, memory_gb=memory_budget_gb,
                                            accuracy_loss=accuracy_budget)
    planned = _plan(model, settings, config, where, budget, inputs, on_measurement)
    plan = planned.plan
    selection = verifying.select_backends(backends, plugins.backends(), plan.proposed.settings["backends"],
                                         plan.model.kind)
    reports = []
    try:
        for name, backend in selection:
            if on_backend:
                on_backend(name)
            reports.append(verifying.verify_backend(name, backend, plan))
    except Interrupted as interrupted:
        raise Interrupted([m for r in reports for m in r.measurements] + interrupted.measurements) from None
    measurements = tuple(m for r in reports for m in r.measurements)
    proposed, chosen = plan.proposed, planned.chosen
    measured = measuring.measured_decisions(reports, proposed)
    if not measured:
        if measurements and all(m.outcome is Outcome.OUT_OF_MEMORY for m in measurements):
            raise DoesNotFit(f"{chosen.stats.name} ran out of memory at batch 1 in every precision; "
                             "free GPU memory or use a smaller model", measurements)
        over_budget = [r for r in reports if r.over_budget]
        if over_budget:
            needed = ", ".join(f"{r.backend} needs about {r.budget_needed_s} s" for r in over_budget)
            raise NoBackend(f"the {budget_s:g} s budget covers no configuration ({needed} to measure one "
                            "configuration once, batch 1 unless batch is fixed, see above); pass a larger "
                            "--budget-s (about "
                            f"{max(r.budget_needed_s for r in over_budget)} s)", measurements, tuple(reports))
        raise NoBackend("no backend could run; install one (pip install 'autotune[torch]') or see the "
                        "reasons above", measurements, tuple(reports))
    final = _recommend(planned.machine, planned.request, chosen, measured=measured,
                       measurements=tuple(r.to_dict() for r in reports),
                       measured_latency_ms=measuring.batch_one_latency_ms(reports, measured),
                       backend_options=measuring.winning_options(reports, proposed))
    final = with_claims(final, reports)
    return Verification(final, proposed, tuple(reports), plan.cpu_load)


class _Planned(NamedTuple):
    """A measurement plan and what verify needs again to recommend with its results."""

    plan: MeasurementPlan
    request: Request
    chosen: ModelRequest
    machine: Machine


def _plan(model: str | None, settings: dict[str, Any], config: str | Path | None, where: str,
          budget: MeasurementBudget, inputs: str | Path | None,
          on_measurement: Callable[[Any], None] | None) -> _Planned:
    """The one place a measurement plan is made, for verify and bench: the request, its model,
    this machine, the rules' proposal, and the budgets."""
    from autotune.hardware.cpu_load import sample_load  # noqa: PLC0415
    from autotune.measure.plan import MeasurementPlan  # noqa: PLC0415

    request = settings_request({"model": model, **settings}, config, where, default_model="resnet18")
    chosen = _measured_model(request)
    machine = probe()
    proposed = _recommend(machine, request, chosen)
    _check_inputs(inputs, chosen, proposed)
    assert chosen.source is not None  # model_request always names what it measured
    plan = MeasurementPlan(
        proposed=proposed, model=chosen.source, stats=chosen.stats,
        facts=machine_facts(machine, **request.inputs, model=chosen.stats), optimizer=chosen.optimizer,
        latency_budget_ms=chosen.latency_budget_ms, budget=budget,
        inputs_path=Path(inputs) if inputs is not None else None,
        # A graph exported with a fixed batch runs at that batch: no search, no exploration.
        user_fixed=frozenset(request.overrides) | (
            {"batch_size"} if chosen.stats.inputs.fixed_batch is not None else set()),
        user_options=request.options, on_measurement=on_measurement, headroom=chosen.headroom,
        cpu_load=sample_load() if proposed.settings["device"] == "cpu" else None)
    return _Planned(plan, request, chosen, machine)


def measurement_plan(model: str | None = None, *, budget: MeasurementBudget | None = None,
                     config: str | Path | None = None, where: str = WHERE,
                     **settings: Any) -> MeasurementPlan:
    """The plan :func:`verify` and :func:`bench` measure by, for ``model`` and these settings
    on this machine (for a script that drives the measurer itself)."""
    from autotune.measure.plan import MeasurementBudget  # noqa: PLC0415

    return _plan(model, settings, config, where, budget or MeasurementBudget(), None, None).plan


def _check_inputs(inputs: str | Path | None, chosen, proposed: Recommendation) -> None:
    """Read ``--inputs`` before any measuring, so a bad file is one line, not a failed measurement."""
    if inputs is None:
        return
    from autotune.measure.accuracy_batch import load_inputs  # noqa: PLC0415
    from autotune.measure.run_config import run_resolution  # noqa: PLC0415

    resolution = run_resolution(chosen.stats, proposed.settings)
    load_inputs(Path(inputs), chosen.stats.inputs.at(resolution), 1)


def bench(model: str | None = None, *, backend: str | None = None, batches: Sequence[int] | None = None,
          resolutions: Sequence[int] | None = None, precisions: Sequence[str] | None = None,
          budget_s: float | None = None, memory_budget_gb: float | None = None,
          plot: str | Path | None = None, config: str | Path | None = None, where: str = WHERE,
          on_measurement: Callable[[Any], None] | None = None, **settings: Any) -> BenchResult:
    """Measure ``backend`` (None: :func:`autotune.measure.bench.default_backend`) at every
    batch (default 1-32) x resolution x precision (default FP32, the recommended one, and the
    alternative and quantised ones it proposes), ``budget_s`` seconds of wall time each (a
    one-time model build or export is not charged to a point). None: the protocol's timing
    window, which a point whose minimum protocol needs longer may outrun while the sweep's
    60 s last. With ``plot``, write the throughput and latency plot there (PNG). A point whose minimum
    protocol cannot fit its budget is an ``over_budget`` measurement that says why."""
    from autotune import plugins  # noqa: PLC0415
    from autotune.measure import bench as benching  # noqa: PLC0415

    if plot is not None:
        check_writable(Path(plot))
        if importlib.util.find_spec("matplotlib") is None:
            raise UserError("autotune bench plots with matplotlib, which is not installed; "
                            "pip install 'autotune[bench]'")
    registered = plugins.backends()
    if backend is not None and backend not in registered:
        raise UserError(f"unknown backend {backend!r}; registered: {', '.join(sorted(registered))}")
    from autotune.measure.plan import MeasurementBudget  # noqa: PLC0415

    budget = MeasurementBudget.from_request(point_s=budget_s, memory_gb=memory_budget_gb)
    plan = _plan(model, settings, config, where, budget, None, on_measurement).plan
    if backend is None:
        backend = benching.default_backend(registered, plan)
    return benching.bench(benching.BenchSweep(
        backend_name=backend, backend=registered[backend][1], plan=plan,
        precisions=tuple(precisions or ()), batches=tuple(batches or ()),
        resolutions=tuple(resolutions or ()), plot=Path(plot) if plot is not None else None))


def profile(models: Sequence[str] = (), *, task: str = "infer", measure: bool = False,
            store: str | Path | None = None, budget_s: float = VERIFY_BUDGET_S,
            config: str | Path | None = None, where: str = WHERE,
            on_measurement: Callable[[Any], None] | None = None,
            on_backend: Callable[[str], None] | None = None, host: str | None = None,
            replay: str | Path | None = None, **settings: Any):
    """Write this machine's profile for ``task`` (and ``models``): the probe, the
    recommendation for each model (measured by :func:`verify` with ``measure``) with every reason, and
    the fingerprint, to ``<store>/<host>.<purpose>.yaml``. Returns (the path, the profile).

    Nothing is written until every recommendation is made, and then whole: an interrupted
    run leaves the previous profile as it was. ``host`` names the machine in place of its
    host name (a fleet's collector, where nodes share one); ``replay`` describes the machine
    an NVML recording holds (rules only: measuring runs here)."""
    from autotune.machine_profiles.fingerprint import fingerprint  # noqa: PLC0415
    from autotune.machine_profiles.store import (  # noqa: PLC0415
        MachineProfile,
        profile_path,
        purpose_of,
        store_folder,
        write_profile,
    )

    folder = store_folder(store)
    recommendations = []
    for model in list(models) or [None]:
        if measure:
            measured = verify(model, budget_s=budget_s, config=config, where=where, task=task,
                              on_measurement=on_measurement, on_backend=on_backend, **settings)
            recommendations.append(measured.recommendation)
        else:
            recommendations.append(recommend(model, config=config, where=where, task=task, replay=replay,
                                             **settings))
    machine = probe(replay=replay)
    prints = fingerprint(machine)
    if host:
        prints = replace(prints, host=host)
    made = MachineProfile(purpose=purpose_of(task, "-".join(models) if models else None), fingerprint=prints,
                          machine=machine.to_dict(), recommendations=tuple(recommendations))
    path = profile_path(folder, prints.host, made.purpose)
    write_profile(made, path)
    return path, made


def find_profile(path: str | Path | None = None, *, task: str = "infer", model: str | None = None,
                 store: str | Path | None = None) -> Path:
    """The profile file: ``path`` as given, else this machine's for ``task`` (and ``model``)
    in the store."""
    import socket  # noqa: PLC0415

    from autotune.machine_profiles.store import profile_path, purpose_of, store_folder  # noqa: PLC0415

    if path is not None:
        return Path(path)
    return profile_path(store_folder(store), socket.gethostname(), purpose_of(task, model))


def check_profile(path: str | Path | None = None, *, task: str = "infer", model: str | None = None,
                  store: str | Path | None = None):
    """(the profile, what changed since it was made): is it still this machine's?

    :raises ProfileError: no profile there, or one that cannot be read as a profile."""
    from autotune.machine_profiles.fingerprint import compare, fingerprint  # noqa: PLC0415
    from autotune.machine_profiles.store import read_profile  # noqa: PLC0415

    found = read_profile(find_profile(path, task=task, model=model, store=store))
    return found, compare(found.fingerprint, fingerprint(probe()))
