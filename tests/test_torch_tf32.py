"""TF32 as autotune sets it keeps every one of PyTorch's readers working (issue 24, item 1),
and a torch session puts back every process-wide setting it changed, even when it fails to
open (item 12).

PyTorch refuses to answer its legacy TF32 readers when the legacy and the ``fp32_precision``
settings disagree (aten/src/ATen/Context.cpp); Lightning, Hugging Face and Inductor call them.
Each test reads all of them after each setting autotune makes (on, off, put back), on the CPU:
the readers are flags, no GPU needed.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

torch = pytest.importorskip("torch")
from autotune_plugins.torch.runner import TorchPrepared, TorchRunner, fp32_math  # noqa: E402
from torch import nn  # noqa: E402

from autotune.backend_api import RunConfig  # noqa: E402
from autotune.model.source import parse_model  # noqa: E402
from autotune.model_inputs import from_shape  # noqa: E402
from autotune.training.config import TrainingConfig, apply_torch_settings  # noqa: E402
from autotune.training.torch_tf32 import read_state, restore, tf32_in_use  # noqa: E402

SMALL = "tests.test_model_stats:small_cnn"
RAISES = "raises"


def every_reader() -> dict[str, object]:
    """What each of PyTorch's TF32 readers that this torch has answers; RAISES where it refuses."""
    backends = torch.backends
    readers = {
        "torch.get_float32_matmul_precision()": torch.get_float32_matmul_precision,
        "cuda.matmul.allow_tf32": lambda: backends.cuda.matmul.allow_tf32,
        "cudnn.allow_tf32": lambda: backends.cudnn.allow_tf32,
    }
    for name, owner in (("backends.fp32_precision", backends),
                        ("cuda.matmul.fp32_precision", backends.cuda.matmul),
                        ("cudnn.conv.fp32_precision", getattr(backends.cudnn, "conv", None)),
                        ("cudnn.rnn.fp32_precision", getattr(backends.cudnn, "rnn", None))):
        if owner is not None and hasattr(owner, "fp32_precision"):
            readers[name] = lambda owner=owner: owner.fp32_precision
    answers: dict[str, object] = {}
    for name, read in readers.items():
        try:
            answers[name] = read()
        except RuntimeError:
            answers[name] = RAISES
    return answers


def cudnn_flags_enter() -> bool:
    """Whether ``with torch.backends.cudnn.flags(...)`` (as Hugging Face's CTC loss uses it) works."""
    try:
        with torch.backends.cudnn.flags(enabled=False):
            pass
    except RuntimeError:
        return False
    return True


def assert_every_reader_works(expected_tf32: bool) -> None:
    answers = every_reader()
    assert RAISES not in answers.values(), answers
    assert cudnn_flags_enter()
    assert answers["torch.get_float32_matmul_precision()"] == ("high" if expected_tf32 else "highest")
    assert answers["cuda.matmul.allow_tf32"] is expected_tf32
    assert answers["cudnn.allow_tf32"] is expected_tf32
    assert tf32_in_use() == (expected_tf32, expected_tf32)


@pytest.fixture(autouse=True)
def torch_tf32_put_back():
    """Each test leaves torch's TF32 state as it found it: autotune's settings, and the
    scripts' below (which also set the backends' "all" entries), undone."""
    before = read_state()
    table = hasattr(torch._C, "_get_fp32_precision_getter")
    alls = [(backend, torch._C._get_fp32_precision_getter(backend, "all"))
            for backend in ("generic", "cuda", "mkldnn")] if table else []
    yield
    for backend, value in alls:
        torch._C._set_fp32_precision_setter(backend, "all", value)
    restore(before)


def open_session(tf32: bool, precision: str = "fp32"):
    runner = TorchRunner()
    config = RunConfig("infer", precision, 2, 32).with_options(tf32=tf32)
    preparation = config.preparation(from_shape((3, 32, 32)))
    prepared = runner.prepare(parse_model(SMALL, "3,32,32"), preparation, "cpu", 2)
    return runner.open(prepared, config)


#: Scripts' own settings before autotune runs: none, the legacy API (as Lightning's
#: Trainer and most scripts do), and the new API on one op and on every backend at once.
SCRIPTS = {
    "nothing": lambda: None,
    "legacy high": lambda: torch.set_float32_matmul_precision("high"),
    "legacy medium, cudnn off": lambda: (torch.set_float32_matmul_precision("medium"),
                                         setattr(torch.backends.cudnn, "allow_tf32", False)),
    "new api, matmul": lambda: setattr(torch.backends.cuda.matmul, "fp32_precision", "tf32"),
    "new api, everything": lambda: setattr(torch.backends, "fp32_precision", "tf32"),
}


@pytest.mark.parametrize("script", SCRIPTS)
@pytest.mark.parametrize(("tf32", "precision"), [(True, "fp32"), (False, "fp32"), (False, "tf32")])
def test_a_torch_session_keeps_every_tf32_reader_working_and_restores_the_scripts(script, tf32, precision):
    if script.startswith("new api") and not hasattr(torch.backends.cuda.matmul, "fp32_precision"):
        pytest.skip("this torch has no fp32_precision API")
    SCRIPTS[script]()
    before = every_reader()
    session = open_session(tf32, precision)
    try:
        assert_every_reader_works(tf32 or precision == "tf32")
    finally:
        session.close()
    assert every_reader() == before  # a script's mix, if it had one, is its own again


@pytest.mark.parametrize("tf32", [True, False])
def test_import_autotune_auto_keeps_every_tf32_reader_working(tf32):
    chosen = TrainingConfig(source="profile", device="cuda", tf32=tf32)
    assert apply_torch_settings(chosen, torch_was_imported=False)[-1] == f"tf32={'on' if tf32 else 'off'}"
    assert_every_reader_works(tf32)


def test_import_autotune_auto_keeps_a_legacy_tf32_setting_the_script_made_first():
    torch.set_float32_matmul_precision("high")  # what Lightning's users write
    before = every_reader()
    chosen = TrainingConfig(source="profile", device="cuda", tf32=False)
    done = apply_torch_settings(chosen, torch_was_imported=True)
    assert "kept your TF32 settings (matmul tf32, cuDNN conv tf32)" in done
    assert every_reader() == before
    assert_every_reader_works(True)


def test_a_session_says_what_its_fp32_computed_in():
    session = open_session(tf32=False)
    try:
        assert session.math == ""  # the CPU has no TF32: nothing to tell apart
    finally:
        session.close()
    ieee = "IEEE matmul and conv"
    assert fp32_math("fp32", False, "cuda") == ieee
    tf32 = "TF32 matmul and conv"
    assert fp32_math("fp32", True, "cuda") == fp32_math("tf32", True, "cuda") == tf32
    assert fp32_math("bf16", False, "cuda") == ""  # half precisions say nothing: no FP32 question
    assert fp32_math("fp32", True, "cpu") == ""


class OutOfMemoryOnTheWay(nn.Module):
    """A model whose copy to the GPU runs out of memory, as a large one does in ``.to(device)``."""

    def to(self, *args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")


def test_a_session_that_fails_to_open_puts_back_what_it_had_set(monkeypatch):
    # A GPU as far as the session's calls before .to(device) go: the cap it sets is recorded.
    fractions: list[float] = []
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda *args: "a GPU")
    monkeypatch.setattr(torch.cuda, "get_device_properties",
                        lambda *args: SimpleNamespace(total_memory=16 * 2**30))
    monkeypatch.setattr(torch.cuda, "set_per_process_memory_fraction",
                        lambda fraction, *args: fractions.append(fraction))
    for name in ("reset_peak_memory_stats", "synchronize", "empty_cache"):
        monkeypatch.setattr(torch.cuda, name, lambda *args: None)
    before = torch.backends.cudnn.benchmark, every_reader(), torch.get_num_threads()
    prepared = TorchPrepared(OutOfMemoryOnTheWay(), from_shape((3, 32, 32)), "cuda")
    config = RunConfig("infer", "fp32", 2, 32).with_options(tf32=True, cudnn_benchmark=True)
    runner = TorchRunner()
    with pytest.raises(torch.cuda.OutOfMemoryError) as failed:
        runner.open(prepared, config, memory_budget_bytes=4 * 2**30)
    assert runner.is_out_of_memory(failed.value)  # unchanged: the ladder steps down on it
    assert fractions == [0.25, 1.0]  # capped to the budget, then the cap lifted
    assert (torch.backends.cudnn.benchmark, every_reader(), torch.get_num_threads()) == before
