"""The TensorRT stand-in and the backend use only names the real TensorRT registers.

``tests/tensorrt_api/<version>.txt`` holds the identifiers NVIDIA's bindings wheels keep
(``make tensorrt-names``, scripts/tensorrt_names.py). A name counts as registered when one
of them ends with it: the linker keeps ``INT8`` only as the tail of ``UINT8``. Two checks:
(a) every attribute the backend touches on a version's path — recorded while it builds,
proves and runs engines against the stand-in — is registered in that version; (b) the
stand-in offers nothing that version lacks.
"""

from __future__ import annotations

import enum
import importlib.util
import sys
from pathlib import Path

import pytest

from tests import standin_tensorrt

NAMES = Path(__file__).parent / "tensorrt_api"
TENSORRT_10, TENSORRT_11 = "10.16.1.11", "11.4.0.106"
#: What TensorRT 11 removed (NVIDIA's 10.x to 11.x migration guide), each registered in 10.
REMOVED_IN_11 = ("FP16", "OBEY_PRECISION_CONSTRAINTS", "PREFER_PRECISION_CONSTRAINTS", "EXPLICIT_BATCH",
                 "int8_calibrator", "platform_has_fast_fp16", "platform_has_fast_int8", "device_memory_size")


def registered_names(version: str) -> tuple[str, ...]:
    lines = (NAMES / f"{version}.txt").read_text("utf-8").splitlines()
    return tuple(line for line in lines if line and not line.startswith("#"))


def unregistered(names, version: str) -> set[str]:
    known = registered_names(version)
    return {name for name in names if not any(candidate.endswith(name) for candidate in known)}


def test_the_names_files_tell_the_versions_apart():
    assert unregistered(REMOVED_IN_11, TENSORRT_10) == set()
    assert unregistered(REMOVED_IN_11, TENSORRT_11) == set(REMOVED_IN_11)
    both = ("execute_async_v3", "set_memory_pool_limit", "create_engine_inspector", "device_memory_size_v2",
            "set_input_shape", "build_serialized_network", "TF32", "STRONGLY_TYPED", "get_engine_information")
    assert unregistered(both, TENSORRT_10) == unregistered(both, TENSORRT_11) == set()
    # A tail-merged name is found inside the longer one that holds it.
    assert "INT8" not in registered_names(TENSORRT_11) and unregistered(["INT8"], TENSORRT_11) == set()


def test_the_extraction_reads_an_elf_modules_rodata_and_drops_mangled_type_names():
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "scripts"))
    try:
        import tensorrt_names  # noqa: PLC0415
    finally:
        sys.path.pop(0)
    extension = Path(importlib.util.find_spec("yaml._yaml").origin)  # PyYAML's compiled module
    names = tensorrt_names.registered_names(extension.read_bytes())
    assert "yaml" in " ".join(names).lower() and len(names) > 20
    assert not [name for name in names if tensorrt_names.MANGLED.search(name)]
    assert tensorrt_names.MANGLED.search("N8tensorrt11BuilderFlagE")
    assert not tensorrt_names.MANGLED.search("NetworkDefinitionCreationFlag")
    with pytest.raises(ValueError, match="ELF"):
        tensorrt_names.elf_section(b"not an elf file", ".rodata")


@pytest.mark.parametrize("version", [TENSORRT_10, TENSORRT_11])
def test_the_stand_in_offers_nothing_the_real_version_lacks(version):
    module = standin_tensorrt.make_module(version)
    assert unregistered(standin_tensorrt.public_names(module), version) == set()


def test_the_stand_in_lacks_what_tensorrt_11_removed():
    eleven = standin_tensorrt.make_module(TENSORRT_11)
    assert not set(REMOVED_IN_11) & standin_tensorrt.public_names(eleven)
    assert {"FP16", "OBEY_PRECISION_CONSTRAINTS", "EXPLICIT_BATCH"} <= standin_tensorrt.public_names(
        standin_tensorrt.make_module(TENSORRT_10))


class Recorder:
    """Wraps the stand-in module: every attribute read or written through it, and through
    what its calls return, is recorded by name."""

    PLAIN = (int, float, str, bytes, bool, type(None), tuple, list, dict, enum.Enum)

    def __init__(self) -> None:
        self.names: set[str] = set()

    def wrap(self, value):
        if isinstance(value, self.PLAIN) or (isinstance(value, type) and issubclass(value, enum.Enum)):
            return value if not isinstance(value, type) else _Recorded(value, self)
        try:
            memoryview(value)  # a buffer (a plan, a serialized cache) is read as bytes
            return value
        except TypeError:
            return _Recorded(value, self)


def _unwrapped(value):
    return object.__getattribute__(value, "_target") if isinstance(value, _Recorded) else value


class _Recorded:
    def __init__(self, target, recorder: Recorder):
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_recorder", recorder)

    def __getattr__(self, name):
        recorder = object.__getattribute__(self, "_recorder")
        if not name.startswith("_") or name == "__version__":  # not the import system's own
            recorder.names.add(name)
        value = getattr(object.__getattribute__(self, "_target"), name)
        if name == "ILogger":
            return value  # subclassed by the backend: a class, not a proxy
        return recorder.wrap(value)

    def __setattr__(self, name, value):
        object.__getattribute__(self, "_recorder").names.add(name)
        setattr(object.__getattribute__(self, "_target"), name, _unwrapped(value))

    def __call__(self, *args, **kwargs):
        target = object.__getattribute__(self, "_target")
        result = target(*map(_unwrapped, args), **{k: _unwrapped(v) for k, v in kwargs.items()})
        return object.__getattribute__(self, "_recorder").wrap(result)

    def __eq__(self, other):
        return object.__getattribute__(self, "_target") == _unwrapped(other)

    def __hash__(self):
        return hash(object.__getattribute__(self, "_target"))

    def __bool__(self):
        return bool(object.__getattribute__(self, "_target"))


@pytest.mark.parametrize("version", [TENSORRT_10, TENSORRT_11])
def test_every_tensorrt_name_the_backend_uses_exists_in_that_version(version, monkeypatch, tmp_path):
    pytest.importorskip("onnxruntime")
    from autotune_plugins.tensorrt import runner as trt_runner  # noqa: PLC0415

    from autotune.backend_api import Preparation, RunConfig  # noqa: PLC0415
    from autotune.model.source import parse_model  # noqa: PLC0415
    from autotune.model_inputs import from_shape  # noqa: PLC0415
    from tests.test_tensorrt_backend import HostDevice, conv_net  # noqa: PLC0415

    recorder = Recorder()
    monkeypatch.setitem(sys.modules, "tensorrt", recorder.wrap(standin_tensorrt.make_module(version)))
    monkeypatch.setattr(trt_runner, "DEVICE", HostDevice)
    model = parse_model(str(conv_net(tmp_path / "conv_net.onnx")), None, None)
    runner = trt_runner.TrtRunner()
    inputs = from_shape((3, 16, 16), "x")
    for precision in runner.precisions("cuda", ("fp32", "tf32", "fp16", "bf16", "int8")):
        prepared = runner.prepare(model, Preparation("infer", precision, inputs), "cuda", 8)
        session = runner.open(prepared, RunConfig("infer", precision, 4, None))
        session.step()
        session.outputs({"x": session.buffers["x"].numpy()[:2]})
        session.close()
        prepared.close()
    assert len(recorder.names) > 30  # the build, the inspector, the run: all went through it
    # The logger subclasses the real ILogger class (not a proxy) and reads its severities.
    logger_names = {"Severity", "INTERNAL_ERROR", "ERROR", "WARNING"}
    assert unregistered(recorder.names | logger_names, version) == set()
