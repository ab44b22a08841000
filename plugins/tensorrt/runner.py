"""The TensorRT backend's runner: an engine built from the ONNX file in the asked precision,
run with ``execute_async_v3`` on device buffers from PyTorch.

Imported only when something is measured. The model is the user's ``.onnx`` file as given,
or a PyTorch model exported through the conversion hook (as for ONNX Runtime); the file the
engine is built from depends on the TensorRT version (see ``engine_build``): TensorRT 10
takes the FP32 file and builder flags, 11 an FP16-converted file; INT8 is a symmetric Q/DQ
file in both (``onnx_variants``' ``qdq_s8``). The prepared model (``prepared``) builds,
caches and proves the engine; each session (``session``) loads it and runs it on the CUDA
device (``device``).
"""

from __future__ import annotations

import importlib
from pathlib import Path
from types import ModuleType

from autotune_plugins.common import onnx_files
from autotune_plugins.tensorrt import engine_build
from autotune_plugins.tensorrt.device import CudaDevice
from autotune_plugins.tensorrt.prepared import TrtPrepared
from autotune_plugins.tensorrt.session import TrtSession

from autotune.sdk import one_line
from autotune.sdk.models import ConversionRequest, convert_model
from autotune.sdk.running import BackendUnavailable, OutOfMemory, Preparation, RunConfig, UnsupportedConfig

#: The TensorRT precisions each API generation builds here. TensorRT 11 takes BF16 from a
#: BF16 ONNX file, which only NVIDIA ModelOpt makes: not supported yet (and FP8, which needs
#: FP8 Q/DQ files, is left out on both).
PRECISIONS = {10: ("fp32", "tf32", "fp16", "bf16", "int8"), 11: ("fp32", "tf32", "fp16", "int8")}
#: What :class:`TrtRunner` makes its device from (tests put a host-memory device here).
DEVICE = CudaDevice


def tensorrt() -> ModuleType:
    """The ``tensorrt`` module, imported when first needed (ImportError without it)."""
    return importlib.import_module("tensorrt")


class TrtRunner:
    """Builds one engine per preparation (cached on disk); each session loads it and opens a
    context at its batch."""

    def __init__(self) -> None:
        self.trt = tensorrt()
        self.generation = engine_build.major_version(self.trt)
        if self.generation not in PRECISIONS:
            raise BackendUnavailable(f"TensorRT {self.trt.__version__} is installed; autotune builds engines "
                                     "with TensorRT 10 and 11")
        self._device = None

    def device(self, wanted: str) -> str:
        if wanted != "cuda":
            raise BackendUnavailable("TensorRT runs on NVIDIA GPUs only, and this machine has none")
        return "cuda"

    def _cuda(self):
        if self._device is None:
            self._device = DEVICE()
        return self._device

    def precisions(self, device: str, device_precisions: tuple[str, ...]) -> tuple[str, ...]:
        return tuple(p for p in PRECISIONS[self.generation] if p in device_precisions)

    def is_out_of_memory(self, error: BaseException) -> bool:
        if isinstance(error, OutOfMemory):
            return True
        return self._device is not None and self._device.is_out_of_memory(error)

    def enforces_memory_budget(self, device: str) -> bool:
        # The workspace follows the budget, but the engine's weights and activations do not:
        # the core holds the budget on the memory model's prediction and the NVML peak.
        return False

    def prepare(self, model, preparation: Preparation, device: str, max_batch_size: int) -> TrtPrepared:
        if preparation.task != "infer":
            raise BackendUnavailable("TensorRT serves trained models; training runs on PyTorch")
        if preparation.precision not in PRECISIONS[self.generation]:
            why = (" (11 takes BF16 from a BF16 ONNX file, which autotune does not make yet)"
                   if preparation.precision == "bf16" else "")
            raise UnsupportedConfig(f"{preparation.precision} is not built by TensorRT "
                                    f"{self.trt.__version__} here{why}")
        cuda = self._cuda()
        request = ConversionRequest(inputs=preparation.inputs, dynamic_batch=True)
        fp32_path = convert_model(model, "onnx", request)
        users_file = model.kind == "onnx"
        if users_file:
            onnx_files.validate(fp32_path)  # a converted file was checked by the converter that wrote it
        problems = engine_build.parse_problems(self.trt, fp32_path)
        if problems:
            raise engine_build.rejection(fp32_path, problems, users_file)
        onnx_path = self._onnx_for(fp32_path, preparation)
        return TrtPrepared(self.trt, cuda, onnx_path, fp32_path, preparation, max_batch_size,
                           onnx_files.recorded_output(fp32_path),
                           users_file=users_file and onnx_path == fp32_path)

    def _onnx_for(self, fp32_path: Path, preparation: Preparation) -> Path:
        """The file the engine is built from: the FP32 file, an FP16-converted one (11), or a
        symmetric INT8 Q/DQ one (both)."""
        precision = preparation.precision
        if precision in ("fp32", "tf32") or (self.generation < 11 and precision in ("fp16", "bf16")):
            return fp32_path
        try:
            from autotune_plugins.common import onnx_variants  # noqa: PLC0415 - ONNX Runtime's quantiser
        except ImportError as error:
            raise UnsupportedConfig(f"{precision} on TensorRT {self.generation} is built from a converted "
                                    f"ONNX file, made with the onnx extra ({one_line(str(error))}): "
                                    "pip install 'autotune[onnx]'") from None
        if precision == "fp16":
            return onnx_variants.make_variant(fp32_path, "fp16").path
        calibration = onnx_files.calibration_batch(preparation)
        return onnx_variants.make_variant(fp32_path, "int8", "qdq_s8", calibration=calibration,
                                          providers_hint="tensorrt").path

    def open(self, prepared: TrtPrepared, config: RunConfig,
             memory_budget_bytes: float | None = None) -> TrtSession:
        return TrtSession(prepared, config, memory_budget_bytes)
