"""A stand-in for NVIDIA TensorRT's Python module (``import tensorrt as trt``), versions 10 and 11.

TensorRT needs an NVIDIA GPU and NVIDIA's libraries, so the TensorRT backend is contract-tested
against this module instead: ``make_module(version)`` returns a fresh module object named
``tensorrt`` with the part of the real API that goes from an ONNX file to outputs:

    Builder, INetworkDefinition <- OnnxParser, IBuilderConfig, IOptimizationProfile, ITimingCache
    Builder.build_serialized_network -> IHostMemory (a plan) -> Runtime.deserialize_cuda_engine
    ICudaEngine -> IExecutionContext.execute_async_v3 (on host memory), EngineInspector

Honesty: it offers nothing the real version lacks. Every public name it defines (module
attributes, the public members of its classes, enum members) is one that TensorRT's bindings
register for that version, as listed in ``tests/tensorrt_api/<version>.txt``;
``unregistered_names(module)`` returns those that are not (it must be empty). Everything the
stand-in needs for itself is behind a leading underscore. TensorRT 11 dropped the precision
builder flags (FP16, BF16, INT8, FP8, OBEY_/PREFER_PRECISION_CONSTRAINTS), EXPLICIT_BATCH, the
INT8 calibrator, ``Builder.platform_has_fast_fp16`` and ``ICudaEngine.device_memory_size``:
its networks are always strongly typed, so precision comes from the ONNX file's own types.

What it does in place of a GPU: a plan is a private header, JSON metadata and the ONNX model;
an engine runs that model with ONNX Runtime on the CPU, reading inputs from and writing outputs
to the host addresses bound with ``set_tensor_address`` (in tests, ``tensor.data_ptr()`` of
contiguous CPU torch tensors). Each layer reports the datatype a real build would choose, through
``EngineInspector``; a Half engine rounds its outputs through float16 so precision shows.
``make_module(version, built_precision="Float")`` makes every layer of every engine report that
datatype whatever was asked: TensorRT 11's trap where asking for FP16 yields an FP32 engine with
only a warning, which the backend must catch. Every message goes through the logger given to
``Builder``, ``Runtime`` or ``OnnxParser``, as ``logger.log(severity, message)`` (or through
the first logger given, with ``first_logger_wins``).

For tests of the backend: ``install(monkeypatch, version)`` puts a fresh module into
``sys.modules["tensorrt"]``; ``refuse_operator(module, "Gemm")`` makes its parser reject an
operator; ``enqueued_streams(module)`` lists the stream handle each enqueue got; an
execution whose tensors would take more than ``_HOST_EXECUTION_LIMIT`` bytes of host memory
fails with TensorRT's out-of-memory error (the backend sizes batches for a GPU).
"""

from __future__ import annotations

import ctypes
import enum
import hashlib
import importlib.machinery
import json
import math
import os
import struct
import sys
import time
import types
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx

__all__ = ["enqueued_streams", "install", "make_module", "public_names", "refuse_operator",
           "unregistered_names"]

_NAMES_DIR = Path(__file__).resolve().parent / "tensorrt_api"
_PLAN_MAGIC = b"STANDIN-TRT\0"
_CACHE_MAGIC = b"STANDIN-TRT-TIMING-CACHE\0"
_PLAN_FORMAT = 1
_PLAN_KEYS = {"format", "version", "verbosity", "layers", "io", "profiles", "device_memory", "rounding"}
#: What get_memory_pool_limit(WORKSPACE) says before a limit is set (the real default is the
#: device's memory: 80 GiB stands for an H100).
_DEFAULT_WORKSPACE = 80 * 2**30

# Enum values as TensorRT 10 numbers them. 11 keeps the names it did not remove; that it also
# keeps their numbers is an assumption (the names files hold names only).
_SEVERITIES = {"INTERNAL_ERROR": 0, "ERROR": 1, "WARNING": 2, "INFO": 3, "VERBOSE": 4}
_DATATYPES = {"FLOAT": 0, "HALF": 1, "INT8": 2, "INT32": 3, "BOOL": 4, "UINT8": 5, "FP8": 6, "BF16": 7,
              "INT64": 8}
_IO_MODES = {"NONE": 0, "INPUT": 1, "OUTPUT": 2}
_MEMORY_POOLS = {"WORKSPACE": 0}
_VERBOSITIES = {"LAYER_NAMES_ONLY": 0, "NONE": 1, "DETAILED": 2}
_INFO_FORMATS = {"ONELINE": 0, "JSON": 1}
_ERROR_CODES = {"SUCCESS": 0, "INTERNAL_ERROR": 1, "MEM_ALLOC_FAILED": 2, "MODEL_DESERIALIZE_FAILED": 3,
                "INVALID_VALUE": 4, "INVALID_GRAPH": 5, "INVALID_NODE": 6, "UNSUPPORTED_GRAPH": 7,
                "UNSUPPORTED_NODE": 8, "UNSUPPORTED_NODE_ATTR": 9, "UNSUPPORTED_NODE_INPUT": 10,
                "UNSUPPORTED_NODE_DATATYPE": 11, "UNSUPPORTED_NODE_DYNAMIC": 12, "UNSUPPORTED_NODE_SHAPE": 13,
                "REFIT_FAILED": 14}
_PRECISION_FLAGS = {"FP16": 0, "INT8": 1, "OBEY_PRECISION_CONSTRAINTS": 9, "PREFER_PRECISION_CONSTRAINTS": 10,
                    "FP8": 15, "BF16": 17}
_OTHER_FLAGS = {"DEBUG": 2, "GPU_FALLBACK": 3, "REFIT": 4, "TF32": 6, "SPARSE_WEIGHTS": 7, "DIRECT_IO": 11,
                "STRIP_PLAN": 19}
_BUILDER_FLAGS = {10: {**_PRECISION_FLAGS, **_OTHER_FLAGS}, 11: dict(_OTHER_FLAGS)}
_NETWORK_FLAGS = {10: {"EXPLICIT_BATCH": 0, "STRONGLY_TYPED": 1}, 11: {"STRONGLY_TYPED": 1}}

#: DataType member -> the name TensorRT prints for it (layer precisions use these: "Float", "Half"...).
_TYPE_TEXT = {"FLOAT": "Float", "HALF": "Half", "INT8": "Int8", "INT32": "Int32", "BOOL": "Bool",
              "UINT8": "UInt8", "FP8": "FP8", "BF16": "BF16", "INT64": "Int64"}
_PRECISIONS = ("Float", "Half", "BF16", "Int8", "FP8")
_FORMATS = {"Float": "Row major linear FP32 format", "Half": "Row major linear FP16 format",
            "BF16": "Row major linear BF16 format", "Int8": "Row major linear Int8 format",
            "FP8": "Row major linear FP8 format", "Int32": "Row major linear Int32 format",
            "Int64": "Row major linear Int64 format", "Bool": "Row major linear Bool format",
            "UInt8": "Row major linear UInt8 format"}
#: What convolution and GEMM kernels pick for 4-D tensors instead of the linear layout.
_FORMATS_4D = {"Half": "Channel major FP16 format where channel % 8 == 0",
               "Int8": "Thirty-two wide channel vectorized row major Int8 format"}
_DYNAMIC_FORMAT = "N/A due to dynamic shapes"

# ONNX element types (onnx.TensorProto.DataType numbers).
_ONNX_TO_TRT = {1: "FLOAT", 10: "HALF", 16: "BF16", 3: "INT8", 2: "UINT8", 6: "INT32", 7: "INT64", 9: "BOOL",
                17: "FP8"}
_ONNX_FP8 = {17, 18, 19, 20}
_ONNX_INT8 = {2, 3}
#: A float tensor's own type, by the name TensorRT prints (DOUBLE is imported as Float).
_ONNX_FLOAT_TEXT = {1: "Float", 11: "Float", 10: "Half", 16: "BF16", 17: "FP8", 18: "FP8", 19: "FP8",
                    20: "FP8"}
_ONNX_ITEMSIZE = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 16: 2, 17: 1,
                  18: 1, 19: 1, 20: 1}
_NUMPY = {"FLOAT": np.float32, "HALF": np.float16, "INT8": np.int8, "UINT8": np.uint8, "INT32": np.int32,
          "INT64": np.int64, "BOOL": np.bool_}

_COMPUTE_OPS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
_QDQ_OPS = {"QuantizeLinear", "DequantizeLinear"}
_LAYER_TYPES = {"Conv": "CaskConvolution", "ConvTranspose": "CaskDeconvolution", "Gemm": "CaskGemm",
                "MatMul": "CaskGemm", "MaxPool": "CaskPooling", "AveragePool": "CaskPooling",
                "GlobalAveragePool": "CaskPooling", "GlobalMaxPool": "CaskPooling", "Reshape": "Shuffle",
                "Flatten": "Shuffle", "Transpose": "Shuffle", "Squeeze": "Shuffle", "Unsqueeze": "Shuffle"}
_STANDARD_DOMAINS = ("", "ai.onnx")
_DEFAULT_STREAM_WARNING = ("Using default stream in enqueueV3() may lead to performance issues due to "
                           "additional calls to cudaStreamSynchronize() by TensorRT to ensure correct "
                           "synchronization. Please use non-default stream instead.")
_PLUGIN_NOT_FOUND = 'creator && "Plugin not found, are the plugin name, version, and namespace correct?"'

#: ONNX Runtime sessions by the SHA-256 of the model, shared by the engines of one process.
_SESSIONS: dict[bytes, Any] = {}
_MAX_SESSIONS = 16
#: The most host memory one execution may fill with tensors (by shape inference, inputs
#: included). A backend picks batches for a GPU's memory; beyond this the stand-in reports
#: TensorRT's out-of-memory error rather than exhaust the host's.
_HOST_EXECUTION_LIMIT = 512 * 2**20


def make_module(version: str, *, built_precision: str | None = None, first_logger_wins: bool = False,
                fuse_layers: bool = False, step_seconds: Mapping[str, float] | None = None,
                ) -> types.ModuleType:
    """A fresh stand-in ``tensorrt`` module for TensorRT ``version`` ("10.x..." or "11.x...").

    ``built_precision`` ("Float", "Half", "BF16", "Int8" or "FP8") makes every layer of every
    engine report that datatype, whatever the flags and the ONNX types ask for.

    ``first_logger_wins``: every message goes to the first logger any Builder, OnnxParser or
    Runtime of the module was given, as NVIDIA's 7.x and 8.0 API references describe the
    logger ("internally considered a singleton"); without it, each object logs to its own,
    as 8.2 and later describe it. Which one 10 and 11 do is unverified: a backend must find
    its messages under both.

    ``fuse_layers``: every engine's layers become one Myelin layer named
    ``{ForeignNode[first...last]}`` whose visible inputs and outputs are the graph's (FP32
    for an FP32-in, FP32-out model), as TensorRT fuses a transformer block; it still
    computes (and rounds) in its precision. ``step_seconds`` ("Float", "Half", "BF16") is
    how long an execution of an engine computing in that precision takes, so that speed
    can tell precisions apart as on a GPU.
    """
    return _Api(version, built_precision, first_logger_wins, fuse_layers, step_seconds).module


def install(monkeypatch: Any, version: str, **kwargs: Any) -> types.ModuleType:
    """Put a fresh stand-in into ``sys.modules["tensorrt"]`` for one test; returns the module."""
    module = make_module(version, **kwargs)
    monkeypatch.setitem(sys.modules, "tensorrt", module)
    return module


def refuse_operator(module: types.ModuleType, op_type: str) -> None:
    """Make the stand-in's ONNX parser reject every node of ``op_type`` (a standard one too), as
    TensorRT does for an operator it has no importer for: it looks for a plugin and finds none."""
    module.OnnxParser._api.refused_operators.add(op_type)


def enqueued_streams(module: types.ModuleType) -> list[int]:
    """The CUDA stream handle each ``execute_async_v3`` of the module's engines was given, in
    order (0 is the default stream, on which the stand-in warns as TensorRT does)."""
    return module.OnnxParser._api.enqueued_streams


def public_names(module: types.ModuleType) -> set[str]:
    """Every public name a stand-in module offers: its attributes, and for each class in it
    (nested classes too) the public names its own classes define along its MRO, and enum members.

    Names that Python's own base classes bring (``int.bit_length`` on an IntEnum) are left out:
    the real bindings' objects have their own set of those, not TensorRT names. Instances hold
    only underscored attributes, so the classes say everything an object offers.
    """
    names: set[str] = set()
    seen: set[type] = set()

    def walk(cls: type) -> None:
        if cls in seen:
            return
        seen.add(cls)
        if issubclass(cls, enum.Enum):
            names.update(cls.__members__)
        for klass in cls.__mro__:
            if klass.__module__ in ("builtins", "enum", "ctypes", "_ctypes"):
                continue
            for name, value in vars(klass).items():
                if not name.startswith("_"):
                    names.add(name)
                    if isinstance(value, type):
                        walk(value)

    for name, value in vars(module).items():
        if name.startswith("_") and name != "__version__":
            continue
        names.add(name)
        if isinstance(value, type):
            walk(value)
    return names


def unregistered_names(module: types.ModuleType) -> set[str]:
    """The public names of a stand-in module that its TensorRT version's bindings do not register."""
    registered = _registered_names(module.__version__)
    return {name for name in public_names(module) if not any(line.endswith(name) for line in registered)}


def _registered_names(version: str) -> list[str]:
    """The identifiers in the names file of ``version``, or of the listed version with its major."""
    path = _NAMES_DIR / f"{version}.txt"
    if not path.exists():
        major = version.split(".")[0]
        candidates = sorted(_NAMES_DIR.glob(f"{major}.*.txt"))
        if not candidates:
            raise FileNotFoundError(f"no names file for TensorRT {major} in {_NAMES_DIR}")
        path = candidates[-1]
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


# ----------------------------------------------------------------------------- the per-module API


class _Api:
    """What the objects of one stand-in module share: its version, its enums and its classes."""

    def __init__(self, version: str, built_precision: str | None, first_logger_wins: bool = False,
                 fuse_layers: bool = False, step_seconds: Mapping[str, float] | None = None) -> None:
        try:
            major = int(str(version).split(".")[0])
        except ValueError:
            raise ValueError(f"not a TensorRT version: {version!r}") from None
        if major not in (10, 11):
            raise ValueError(f"the stand-in follows TensorRT 10 and 11, not {version!r}")
        if built_precision is not None and built_precision not in _PRECISIONS:
            raise ValueError(f"built_precision must be one of {', '.join(_PRECISIONS)}, "
                             f"not {built_precision!r}")
        self.version = str(version)
        self.major = major
        self.built_precision = built_precision
        self.host_memory_types: dict[int, type] = {}
        self.refused_operators: set[str] = set()
        self.first_logger_wins = first_logger_wins
        self.fuse_layers = fuse_layers
        self.step_seconds = dict(step_seconds or {})
        self.first_logger: Any = None
        #: The stream handle each ``execute_async_v3`` was given, in order (see ``enqueued_streams``).
        self.enqueued_streams: list[int] = []

        self.Severity = _enum("Severity", _SEVERITIES, qualname="ILogger.Severity")
        self.DataType = _enum("DataType", _DATATYPES)
        self.TensorIOMode = _enum("TensorIOMode", _IO_MODES)
        self.MemoryPoolType = _enum("MemoryPoolType", _MEMORY_POOLS)
        self.ProfilingVerbosity = _enum("ProfilingVerbosity", _VERBOSITIES)
        self.LayerInformationFormat = _enum("LayerInformationFormat", _INFO_FORMATS)
        self.BuilderFlag = _enum("BuilderFlag", _BUILDER_FLAGS[major])
        self.NetworkDefinitionCreationFlag = _enum("NetworkDefinitionCreationFlag", _NETWORK_FLAGS[major])
        self.ErrorCode = _enum("ErrorCode", _ERROR_CODES)

        ten = major == 10
        severities = {name: self.Severity[name] for name in _SEVERITIES}
        self.ILogger = self._derive("ILogger", _ILogger, Severity=self.Severity, **severities)
        self.Logger = self._derive("Logger", _Logger, self.ILogger)
        self.Builder = self._derive("Builder", *((_Builder10,) if ten else ()), _Builder)
        self.INetworkDefinition = self._derive("INetworkDefinition", _Network)
        self.ITensor = self._derive("ITensor", _Tensor)
        self.OnnxParser = self._derive("OnnxParser", _OnnxParser)
        self.ParserError = self._derive("ParserError", _ParserError)
        self.IBuilderConfig = self._derive("IBuilderConfig", *((_BuilderConfig10,) if ten else ()),
                                           _BuilderConfig)
        self.IOptimizationProfile = self._derive("IOptimizationProfile", _Profile)
        self.ITimingCache = self._derive("ITimingCache", _TimingCache)
        self.IHostMemory = self._derive("IHostMemory", _HostMemory, __slots__=())
        self.Runtime = self._derive("Runtime", _Runtime)
        self.ICudaEngine = self._derive("ICudaEngine", *((_CudaEngine10,) if ten else ()), _CudaEngine)
        self.IExecutionContext = self._derive("IExecutionContext", _ExecutionContext)
        self.EngineInspector = self._derive("EngineInspector", _EngineInspector)

        module = types.ModuleType("tensorrt", f"Stand-in for TensorRT {self.version}'s Python bindings.")
        module.__version__ = self.version
        # An imported module has a spec: importlib.util.find_spec("tensorrt") reads it from sys.modules.
        module.__spec__ = importlib.machinery.ModuleSpec("tensorrt", None, origin=__file__)
        for name in ("ILogger", "Logger", "DataType", "TensorIOMode", "MemoryPoolType",
                     "ProfilingVerbosity", "LayerInformationFormat", "BuilderFlag",
                     "NetworkDefinitionCreationFlag", "ErrorCode", "Builder", "INetworkDefinition", "ITensor",
                     "OnnxParser", "ParserError", "IBuilderConfig", "IOptimizationProfile", "ITimingCache",
                     "IHostMemory", "Runtime", "ICudaEngine", "IExecutionContext", "EngineInspector"):
            setattr(module, name, getattr(self, name))
        module.init_libnvinfer_plugins = _init_libnvinfer_plugins
        self.module = module

    def _derive(self, name: str, *bases: type, **members: Any) -> type:
        """This module's class ``name``: the shared implementation bound to this module's API."""
        # The docstring of the implementation, not of a 10-only mixin or of ILogger under Logger.
        namespace = {"_api": self, "__module__": "tensorrt", "__qualname__": name,
                     "__doc__": next(b.__doc__ for b in bases if b.__name__.startswith("_")
                                     and not b.__name__.endswith("10"))}
        namespace.update(members)
        return type(name, bases, namespace)

    def log(self, logger: Any, severity: str, message: str) -> None:
        """Send a message through the user's logger, as TensorRT does for everything it reports."""
        logger.log(self.Severity[severity], message)

    def check_logger(self, logger: Any, function: str) -> Any:
        """The logger, if it is this module's ILogger and its ``__init__`` ran (pybind11 demands both)."""
        _require(logger, self.ILogger, function)
        if not getattr(logger, "_standin_initialised", False):
            raise TypeError(f"{type(logger).__name__}.__init__() must be called when overriding __init__")
        if self.first_logger_wins:
            if self.first_logger is None:
                self.first_logger = logger
            return self.first_logger
        return logger

    def host_memory(self, data: bytes) -> Any:
        """An IHostMemory holding a copy of ``data``.

        A Python class gets the buffer protocol only from a C base before Python 3.12, so each size
        has its own class deriving from IHostMemory and a ctypes byte array (which adds no public name).
        """
        cls = self.host_memory_types.get(len(data))
        if cls is None:
            cls = type("IHostMemory", (self.IHostMemory, ctypes.c_ubyte * len(data)),
                       {"__slots__": (), "__module__": "tensorrt", "__qualname__": "IHostMemory"})
            self.host_memory_types[len(data)] = cls
        return cls.from_buffer_copy(data)


class _Enum(enum.IntEnum):
    """An IntEnum that prints as pybind11 enums do (``BuilderFlag.TF32``), not as a bare int."""

    def __str__(self) -> str:
        return f"{type(self).__name__}.{self.name}"

    def __format__(self, spec: str) -> str:
        return format(int(self), spec) if spec else str(self)


def _enum(name: str, members: Mapping[str, int], qualname: str | None = None) -> type[_Enum]:
    return _Enum(name, list(members.items()), module="tensorrt", qualname=qualname or name)


def _require(value: Any, cls: type, function: str) -> None:
    """Reject an argument of the wrong type with pybind11's TypeError (plain ints for enums too)."""
    if not isinstance(value, cls):
        raise TypeError(f"{function}(): incompatible function arguments: expected tensorrt.{cls.__name__}, "
                        f"got {type(value).__name__} {value!r}")


def _init_libnvinfer_plugins(logger: Any, namespace: str) -> bool:
    """Register TensorRT's own plugins (the stand-in has none to register)."""
    return True


def _dims_text(dims: Sequence[int]) -> str:
    return "[" + ",".join(str(int(d)) for d in dims) + "]"


class _Strict:
    """A pybind11 object takes no attribute its class does not define (``config.max_workspace_size
    = ...`` raises on 10), and neither does a stand-in object; a Python subclass may add its own."""

    __slots__ = ()

    def __setattr__(self, name: str, value: Any) -> None:
        if (not name.startswith("_") and type(self).__module__ == "tensorrt"
                and not isinstance(getattr(type(self), name, None), property)):
            raise AttributeError(f"'tensorrt.{type(self).__name__}' object has no attribute '{name}'")
        object.__setattr__(self, name, value)


class _Internal(_Strict):
    """Base of the classes only TensorRT creates: Python code cannot construct them."""

    _api: _Api

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        raise TypeError(f"tensorrt.{type(self).__name__}: No constructor defined!")

    @classmethod
    def _create(cls, *args: Any) -> Any:
        self = object.__new__(cls)
        self._setup(*args)
        return self

    def _setup(self, *args: Any) -> None:
        raise NotImplementedError


# ----------------------------------------------------------------------------- loggers


class _ILogger:
    """Abstract logger: subclass it, call ``trt.ILogger.__init__(self)`` and override ``log``."""

    _api: _Api

    def __init__(self) -> None:
        self._standin_initialised = True

    def log(self, severity: Any, msg: str) -> None:
        """Called by TensorRT for every message; the base class has no implementation."""
        raise RuntimeError('Tried to call pure virtual function "ILogger::log"')


class _Logger:
    """The logger TensorRT ships; this one keeps the messages at or above ``min_severity``."""

    _api: _Api

    def __init__(self, min_severity: Any = None) -> None:
        super().__init__()
        if min_severity is None:
            min_severity = self._api.Severity.WARNING
        _require(min_severity, self._api.Severity, "Logger.__init__")
        self._min_severity = min_severity
        # (severity, message) pairs; the real Logger prints instead, which tests do not want.
        self._messages: list[tuple[Any, str]] = []

    @property
    def min_severity(self) -> Any:
        """The least severe messages that are kept."""
        return self._min_severity

    @min_severity.setter
    def min_severity(self, value: Any) -> None:
        _require(value, self._api.Severity, "min_severity")
        self._min_severity = value

    def log(self, severity: Any, msg: str) -> None:
        """Keep ``msg`` if ``severity`` is at least as severe as ``min_severity``."""
        if int(severity) <= int(self._min_severity):
            self._messages.append((severity, msg))


# ----------------------------------------------------------------------------- networks and parser


class _Tensor(_Internal):
    """A network input or output."""

    def _setup(self, name: str, shape: tuple[int, ...], dtype: Any) -> None:
        self._name, self._shape, self._dtype = name, shape, dtype

    @property
    def name(self) -> str:
        """The tensor's name (the ONNX value's name)."""
        return self._name

    @property
    def shape(self) -> tuple[int, ...]:
        """The tensor's dimensions, -1 for a dynamic one."""
        return self._shape

    @property
    def dtype(self) -> Any:
        """The tensor's DataType."""
        return self._dtype

    def __repr__(self) -> str:
        return f"<ITensor {self._name} {self._shape} {self._dtype}>"


class _Network(_Internal):
    """A network definition, filled by OnnxParser."""

    def _setup(self, flags: int) -> None:
        api = self._api
        strongly = 1 << int(api.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
        # TensorRT 11 has no weakly typed networks: the flag is accepted and changes nothing.
        self._strongly_typed = api.major >= 11 or bool(int(flags) & strongly)
        self._model: onnx.ModelProto | None = None
        self._onnx = b""
        self._inputs: list[Any] = []
        self._outputs: list[Any] = []
        self._layer_count = 0

    @property
    def num_inputs(self) -> int:
        """The number of network inputs."""
        return len(self._inputs)

    @property
    def num_outputs(self) -> int:
        """The number of network outputs."""
        return len(self._outputs)

    @property
    def num_layers(self) -> int:
        """The number of layers (one per ONNX node here)."""
        return self._layer_count

    def get_input(self, index: int) -> Any:
        """Input ``index``, or None past the end."""
        return self._inputs[index] if 0 <= index < len(self._inputs) else None

    def get_output(self, index: int) -> Any:
        """Output ``index``, or None past the end."""
        return self._outputs[index] if 0 <= index < len(self._outputs) else None


class _ParserError(_Internal):
    """One error of OnnxParser: what failed, in which node (-1 when not about a node), where."""

    def _setup(self, code: Any, desc: str, node: int, node_name: str, node_operator: str, func: str,
               file: str, line: int) -> None:
        self._code, self._desc, self._node = code, desc, node
        self._node_name, self._node_operator = node_name, node_operator
        self._func, self._file, self._line = func, file, line

    def code(self) -> Any:
        """The ErrorCode."""
        return self._code

    def desc(self) -> str:
        """What went wrong."""
        return self._desc

    def node(self) -> int:
        """The index of the ONNX node, -1 when the error is not about a node."""
        return self._node

    def node_name(self) -> str:
        """The ONNX node's name ("" when it has none)."""
        return self._node_name

    def node_operator(self) -> str:
        """The ONNX node's op_type."""
        return self._node_operator

    def func(self) -> str:
        """The parser function that failed."""
        return self._func

    def file(self) -> str:
        """The parser source file that failed."""
        return self._file

    def line(self) -> int:
        """The parser source line that failed."""
        return self._line

    def local_function_stack(self) -> list[str]:
        """The ONNX local functions the node is nested in (none here)."""
        return []

    def local_function_stack_size(self) -> int:
        """The depth of ``local_function_stack``."""
        return 0

    def __str__(self) -> str:
        # The parser's own wording (onnx-tensorrt's parserErrorStr).
        text = f"({self._func}): {self._code.name}: {self._desc}"
        if self._code.name in ("MODEL_DESERIALIZE_FAILED", "REFIT_FAILED"):
            return text
        return f"In node {self._node} with name: {self._node_name} and operator: {self._node_operator} {text}"


class _OnnxParser(_Strict):
    """Parses an ONNX model into a network definition."""

    _api: _Api

    def __init__(self, network: Any, logger: Any) -> None:
        _require(network, self._api.INetworkDefinition, "OnnxParser.__init__")
        self._network = network
        self._logger = self._api.check_logger(logger, "OnnxParser.__init__")
        self._errors: list[Any] = []

    @property
    def num_errors(self) -> int:
        """The number of errors the previous parses recorded."""
        return len(self._errors)

    def get_error(self, index: int) -> Any:
        """Error ``index`` (a ParserError), or None past the end."""
        return self._errors[index] if 0 <= index < len(self._errors) else None

    def clear_errors(self) -> None:
        """Forget the recorded errors."""
        self._errors.clear()

    def parse_from_file(self, model: str) -> bool:
        """Parse the ONNX file at path ``model`` (external weights next to it); True on success."""
        try:
            proto = onnx.load(os.fspath(model))
        except Exception as error:  # noqa: BLE001 - whatever onnx raises, the parser reports it
            return self._fail_to_load(f"Failed to parse ONNX model from file: {model}: {error}")
        return self._import(proto)

    def parse(self, model: Any, path: str | None = None) -> bool:
        """Parse a serialized ONNX model; ``path`` locates externally stored weights. True on success."""
        data = bytes(memoryview(model))
        try:
            proto = onnx.load_from_string(data)
            if path is not None:
                folder = os.path.dirname(os.fspath(path))
                onnx.external_data_helper.load_external_data_for_model(proto, folder)
        except Exception as error:  # noqa: BLE001
            return self._fail_to_load(f"Failed to parse ONNX model: {error}")
        return self._import(proto)

    def _fail_to_load(self, desc: str) -> bool:
        api = self._api
        error = api.ParserError._create(api.ErrorCode.MODEL_DESERIALIZE_FAILED, desc, -1, "", "",
                                        "parseFromFile", "ModelImporter.cpp", 0)
        self._errors.append(error)
        api.log(self._logger, "ERROR", str(error))
        return False

    def _import(self, proto: onnx.ModelProto) -> bool:
        api = self._api
        network = self._network
        graph = proto.graph
        # Protobuf parses many byte strings that are no model at all: a model has a graph with outputs.
        if not proto.ir_version or not graph.output:
            return self._fail_to_load("Failed to parse ONNX model: no graph with outputs")
        if network._model is not None:
            api.log(self._logger, "ERROR", "Parse was called with a non-empty network definition")
            return False

        errors = []
        initializers = {tensor.name for tensor in graph.initializer}
        inputs = []
        for value in graph.input:
            if value.name in initializers:  # older exporters list the weights as inputs too
                continue
            dtype = _ONNX_TO_TRT.get(value.type.tensor_type.elem_type)
            if dtype is None:
                errors.append(api.ParserError._create(
                    api.ErrorCode.UNSUPPORTED_NODE, 'convertDtype(onnxDtype.elem_type(), &trtDtype) && '
                    '"Failed to convert ONNX date type to TensorRT data type."', -1, value.name, "",
                    "importInput", "ModelImporter.cpp", 0))
                continue
            if dtype == "INT64":
                api.log(self._logger, "WARNING", f"Make sure input {value.name} has Int64 binding.")
            inputs.append(api.ITensor._create(value.name, _value_shape(value), api.DataType[dtype]))
        # TensorRT's static check goes through every node, so each unsupported one is an error.
        for index, node in enumerate(graph.node):
            if node.domain not in _STANDARD_DOMAINS or node.op_type in api.refused_operators:
                api.log(self._logger, "INFO",
                        f"No checker registered for op: {node.op_type}. Attempting to check as plugin.")
                errors.append(api.ParserError._create(
                    api.ErrorCode.INVALID_NODE, _PLUGIN_NOT_FOUND, index, node.name, node.op_type,
                    "checkFallbackPluginImporter", "onnxOpCheckers.cpp", 781))
        if errors:
            for error in errors:
                api.log(self._logger, "ERROR", f"ModelImporter.cpp:954: ERROR: {error.file()}:{error.line()} "
                        f"In function {error.func()}:\n[{int(error.code())}] {error.desc()}")
            self._errors.extend(errors)
            return False

        outputs = []
        for value in graph.output:
            dtype = _ONNX_TO_TRT.get(value.type.tensor_type.elem_type, "FLOAT")
            outputs.append(api.ITensor._create(value.name, _value_shape(value), api.DataType[dtype]))
        network._model = proto
        network._onnx = proto.SerializeToString()
        network._inputs, network._outputs = inputs, outputs
        network._layer_count = len(graph.node)
        return True


def _value_shape(value: onnx.ValueInfoProto) -> tuple[int, ...]:
    """An ONNX value's dimensions, -1 for a symbolic or unknown one."""
    dims = value.type.tensor_type.shape.dim
    return tuple(dim.dim_value if dim.HasField("dim_value") else -1 for dim in dims)


# ----------------------------------------------------------------------------- build configuration


class _Profile(_Internal):
    """Minimum, optimum and maximum shapes of the dynamic inputs."""

    def _setup(self) -> None:
        self._shapes: dict[str, tuple[tuple[int, ...], ...]] = {}

    def set_shape(self, input: str, min: Sequence[int], opt: Sequence[int], max: Sequence[int]) -> None:
        """Set the shape range of input ``input`` (checked against the network when building)."""
        self._shapes[str(input)] = (tuple(int(d) for d in min), tuple(int(d) for d in opt),
                                    tuple(int(d) for d in max))

    def get_shape(self, input: str) -> list[tuple[int, ...]]:
        """[min, opt, max] of input ``input``, or [] when not set."""
        return list(self._shapes.get(input, ()))

    def __bool__(self) -> bool:
        # The partial validation TensorRT does here: equal ranks and 0 <= min <= opt <= max.
        for low, mid, high in self._shapes.values():
            if not len(low) == len(mid) == len(high):
                return False
            if not all(0 <= a <= b <= c for a, b, c in zip(low, mid, high, strict=True)):
                return False
        return True


class _TimingCache(_Internal):
    """Tactic timings, kept across builds; tied to the TensorRT version that made it."""

    def _setup(self, version: str, entries: Sequence[str]) -> None:
        self._version = version
        self._entries = set(entries)

    def serialize(self) -> Any:
        """The cache as IHostMemory, for ``IBuilderConfig.create_timing_cache`` later."""
        payload = json.dumps({"version": self._version, "entries": sorted(self._entries)}).encode()
        return self._api.host_memory(_CACHE_MAGIC + payload)

    def combine(self, input_cache: Any, ignore_mismatch: bool) -> bool:
        """Add the entries of ``input_cache``; False when it comes from another version."""
        _require(input_cache, self._api.ITimingCache, "combine")
        if input_cache._version != self._version and not ignore_mismatch:
            return False
        self._entries |= input_cache._entries
        return True

    def reset(self) -> bool:
        """Empty the cache."""
        self._entries.clear()
        return True


class _BuilderConfig(_Internal):
    """How to build: flags, memory limits, optimization profiles, timing cache, verbosity."""

    def _setup(self, logger: Any) -> None:
        self._logger = logger
        # TF32 is on by default in the real library too.
        self._flags = {self._api.BuilderFlag.TF32}
        self._pool_limits: dict[Any, int] = {}
        self._verbosity = self._api.ProfilingVerbosity.LAYER_NAMES_ONLY
        self._optimization_level = 3
        self._profiles: list[Any] = []
        self._timing_cache: Any = None

    def set_flag(self, flag: Any) -> None:
        """Turn a BuilderFlag on."""
        _require(flag, self._api.BuilderFlag, "set_flag")
        self._flags.add(flag)

    def clear_flag(self, flag: Any) -> None:
        """Turn a BuilderFlag off."""
        _require(flag, self._api.BuilderFlag, "clear_flag")
        self._flags.discard(flag)

    def get_flag(self, flag: Any) -> bool:
        """Whether a BuilderFlag is on."""
        _require(flag, self._api.BuilderFlag, "get_flag")
        return flag in self._flags

    def set_memory_pool_limit(self, pool: Any, pool_size: int) -> None:
        """Limit a memory pool to ``pool_size`` bytes."""
        _require(pool, self._api.MemoryPoolType, "set_memory_pool_limit")
        self._pool_limits[pool] = int(pool_size)

    def get_memory_pool_limit(self, pool: Any) -> int:
        """A memory pool's limit in bytes (the default until one is set)."""
        _require(pool, self._api.MemoryPoolType, "get_memory_pool_limit")
        return self._pool_limits.get(pool, _DEFAULT_WORKSPACE)

    @property
    def profiling_verbosity(self) -> Any:
        """How much the engine will tell its inspector about its layers."""
        return self._verbosity

    @profiling_verbosity.setter
    def profiling_verbosity(self, value: Any) -> None:
        _require(value, self._api.ProfilingVerbosity, "profiling_verbosity")
        self._verbosity = value

    @property
    def builder_optimization_level(self) -> int:
        """How long the builder searches for tactics, 0 to 5 (3 by default); the stand-in has none."""
        return self._optimization_level

    @builder_optimization_level.setter
    def builder_optimization_level(self, value: int) -> None:
        self._optimization_level = int(value)

    @property
    def num_optimization_profiles(self) -> int:
        """The number of optimization profiles added."""
        return len(self._profiles)

    def add_optimization_profile(self, profile: Any) -> int:
        """Add a profile; its index, or -1 (after an error) when it is not valid."""
        _require(profile, self._api.IOptimizationProfile, "add_optimization_profile")
        if not profile:
            self._api.log(self._logger, "ERROR", "IBuilderConfig::addOptimizationProfile: Error Code 3: API "
                          "Usage Error (Parameter check failed, condition: profile->isValid(). )")
            return -1
        # The builder reads the profile as it is now, as TensorRT copies it here.
        copy = self._api.IOptimizationProfile._create()
        copy._shapes = dict(profile._shapes)
        self._profiles.append(copy)
        return len(self._profiles) - 1

    def create_timing_cache(self, serialized_timing_cache: Any) -> Any:
        """A timing cache from ``serialize()``d bytes, a new one from b"", None for other bytes."""
        api = self._api
        data = bytes(memoryview(serialized_timing_cache))
        if not data:
            return api.ITimingCache._create(api.version, ())
        try:
            if not data.startswith(_CACHE_MAGIC):
                raise ValueError("Magic tag does not match")
            content = json.loads(data[len(_CACHE_MAGIC):])
            return api.ITimingCache._create(str(content["version"]), [str(e) for e in content["entries"]])
        except (ValueError, KeyError, TypeError) as error:
            api.log(self._logger, "ERROR", "IBuilderConfig::createTimingCache: Error Code 1: Serialization "
                    f"(Serialization assertion timing cache header check failed.{error})")
            return None

    def set_timing_cache(self, cache: Any, ignore_mismatch: bool) -> bool:
        """Use ``cache`` for the builds; False when it comes from another TensorRT version."""
        api = self._api
        _require(cache, api.ITimingCache, "set_timing_cache")
        if cache._version != api.version and not ignore_mismatch:
            api.log(self._logger, "WARNING", f"The timing cache was created by TensorRT {cache._version}; "
                    f"this is TensorRT {api.version}. It is not used.")
            return False
        self._timing_cache = cache
        return True

    def get_timing_cache(self) -> Any:
        """The timing cache set, or None."""
        return self._timing_cache


class _BuilderConfig10:
    """TensorRT 10's IBuilderConfig members that 11 removed."""

    _calibrator: Any = None

    @property
    def int8_calibrator(self) -> Any:
        """The INT8 calibrator (None: the stand-in has no calibration)."""
        return self._calibrator

    @int8_calibrator.setter
    def int8_calibrator(self, value: Any) -> None:
        self._calibrator = value


# ----------------------------------------------------------------------------- builder


class _BuildError(Exception):
    """A build that fails; the message goes to the logger as an ERROR."""


class _Builder(_Strict):
    """Builds serialized engines (plans) from networks."""

    _api: _Api

    def __init__(self, logger: Any) -> None:
        self._logger = self._api.check_logger(logger, "Builder.__init__")

    def create_network(self, flags: int = 0) -> Any:
        """An empty network; ``flags`` are NetworkDefinitionCreationFlag bits (``1 << int(flag)``)."""
        return self._api.INetworkDefinition._create(int(flags))

    def create_builder_config(self) -> Any:
        """A build configuration with the defaults."""
        return self._api.IBuilderConfig._create(self._logger)

    def create_optimization_profile(self) -> Any:
        """An empty optimization profile."""
        return self._api.IOptimizationProfile._create()

    def build_serialized_network(self, network: Any, config: Any) -> Any:
        """Build a plan: IHostMemory, or None after an ERROR through the logger."""
        api = self._api
        _require(network, api.INetworkDefinition, "build_serialized_network")
        _require(config, api.IBuilderConfig, "build_serialized_network")
        started = time.perf_counter()
        try:
            plan = _build_plan(api, network, config, self._logger)
        except _BuildError as error:
            api.log(self._logger, "ERROR", str(error))
            return None
        seconds = time.perf_counter() - started
        api.log(self._logger, "INFO", f"Engine generation completed in {seconds:.3f} seconds.")
        return api.host_memory(plan)


class _Builder10:
    """TensorRT 10's Builder members that 11 removed."""

    @property
    def platform_has_fast_fp16(self) -> bool:
        """Whether the GPU has fast FP16 (a stand-in GPU does)."""
        return True


def _build_plan(api: _Api, network: Any, config: Any, logger: Any) -> bytes:
    """The plan of ``network`` built with ``config``; raises _BuildError with TensorRT's message."""
    model = network._model
    if model is None or not network._outputs:
        raise _BuildError("Error Code 4: API Usage Error (Network must have at least one output)")
    profiles = _resolve_profiles(network, config)
    flags = {flag.name for flag in config._flags}

    def warn(message: str) -> None:
        api.log(logger, "WARNING", message)

    layers, rounding = _plan_layers(model, strongly_typed=network._strongly_typed, flags=flags,
                                    forced=api.built_precision, warn=warn)
    if api.fuse_layers:
        layers = [_fused_layer(layers, network)]

    # Output shapes as TensorRT's shape analysis finds them: by ONNX shape inference, where a
    # symbolic dimension is dynamic (-1).
    _, symbolic = _tensor_info(model)
    probed = {}
    if any(t.name not in symbolic for t in network._outputs):
        probed = _probe_output_shapes(network, profiles[0])
    io = [{"name": t.name, "mode": "INPUT", "dtype": t.dtype.name, "shape": list(t.shape)}
          for t in network._inputs]
    for tensor in network._outputs:
        shape = probed.get(tensor.name, symbolic.get(tensor.name, list(tensor.shape)))
        io.append({"name": tensor.name, "mode": "OUTPUT", "dtype": tensor.dtype.name, "shape": shape})

    # Device memory: four times the largest activation at the largest shapes (computed, never
    # allocated: a backend's profile can reach batches no host memory holds).
    weights = {initializer.name for initializer in model.graph.initializer}
    largest = 0
    for profile in profiles:
        tensor_types, dims = _tensor_info(model, {name: shapes[2] for name, shapes in profile.items()})
        for name, shape in dims.items():
            if name not in weights and shape and all(d >= 0 for d in shape):
                largest = max(largest, math.prod(shape) * _ONNX_ITEMSIZE.get(tensor_types.get(name, 1), 4))

    cache = config._timing_cache
    if cache is not None:
        for layer in layers:
            key = f"{layer['name']}|{layer['type']}|{layer['precision']}|{json.dumps(profiles)}"
            cache._entries.add(hashlib.sha1(key.encode()).hexdigest()[:16])

    meta = {
        "format": _PLAN_FORMAT,
        "version": api.version,
        "verbosity": config._verbosity.name,
        "layers": layers,
        "io": io,
        "profiles": [{name: [list(s) for s in shapes] for name, shapes in profile.items()}
                     for profile in profiles],
        "device_memory": 4 * largest,
        "rounding": rounding,
    }
    header = json.dumps(meta, sort_keys=True).encode()
    return _PLAN_MAGIC + struct.pack("<QQ", len(header), len(network._onnx)) + header + network._onnx


def _fused_layer(layers: list[dict[str, Any]], network: Any) -> dict[str, Any]:
    """One Myelin layer in place of ``layers``: its inputs and outputs are the network's, in
    the network's own types, whatever the layers inside compute in."""
    def side(tensors: list[Any]) -> list[list[str]]:
        return [[t.name, t.name, _TYPE_TEXT.get(t.dtype.name, "Float")] for t in tensors]

    return {"name": f"{{ForeignNode[{layers[0]['name']}...{layers[-1]['name']}]}}", "type": "Myelin",
            "precision": layers[-1]["precision"], "inputs": side(network._inputs),
            "outputs": side(network._outputs), "tactic": "0x0000000000000000", "onnx": ""}


def _probe_output_shapes(network: Any, profile: Mapping[str, Sequence[Sequence[int]]],
                         ) -> dict[str, list[int]]:
    """Output shapes where shape inference gives none: the model runs on zeros at the profile's
    minimum shapes and again one larger in each dynamic dimension; what changes is dynamic."""
    inputs = [(t.name, t.dtype.name) for t in network._inputs]
    if not all(dtype in _NUMPY for _, dtype in inputs):
        return {}
    smallest = {t.name: tuple(profile[t.name][0]) for t in network._inputs}
    larger = {t.name: tuple(low + 1 if declared == -1 and low < high else low for declared, low, high
                            in zip(t.shape, profile[t.name][0], profile[t.name][2], strict=True))
              for t in network._inputs}
    names = [t.name for t in network._outputs]
    try:
        runs = [_output_shapes_by_running(_session(network._onnx), inputs, shapes, names)
                for shapes in (smallest, larger)]
    except Exception as error:  # noqa: BLE001 - ONNX Runtime's own exception types
        raise _BuildError("Error Code 10: Internal Error (Could not find any implementation for the "
                          f"network: {error})") from None
    return {name: [size if len(runs[1][name]) == len(runs[0][name]) and runs[1][name][axis] == size else -1
                   for axis, size in enumerate(runs[0][name])] for name in names}


def _resolve_profiles(network: Any, config: Any) -> list[dict[str, tuple[tuple[int, ...], ...]]]:
    """Each profile as input name -> (min, opt, max) for every input; _BuildError when one does not fit."""
    inputs = network._inputs
    if not config._profiles and any(-1 in t.shape for t in inputs):
        raise _BuildError("Error Code 4: API Usage Error (Network has dynamic or shape inputs, but no "
                          "optimization profile has been defined.)")
    resolved = []
    names = {t.name for t in inputs}
    for index, profile in enumerate(config._profiles or [None]):
        given = profile._shapes if profile is not None else {}
        for name in given:
            if name not in names:
                raise _BuildError(f"Error Code 4: API Usage Error (Optimization profile {index} sets "
                                  f"dimensions of {name}, which is not an input of the network.)")
        shapes = {}
        for tensor in inputs:
            if tensor.name not in given:
                if -1 in tensor.shape:
                    raise _BuildError(f"Error Code 4: API Usage Error ({tensor.name}: dynamic input is "
                                      f"missing dimensions in profile {index}.)")
                shapes[tensor.name] = (tensor.shape,) * 3
                continue
            low, mid, high = given[tensor.name]
            if not len(low) == len(mid) == len(high) == len(tensor.shape):
                raise _BuildError(f"Error Code 4: API Usage Error ({tensor.name}: number of dimensions in "
                                  f"profile {index} does not match the network definition (got {len(low)}, "
                                  f"expected {len(tensor.shape)}).)")
            for axis, size in enumerate(tensor.shape):
                got = f"min={low[axis]}, opt={mid[axis]}, max={high[axis]}"
                if not 0 <= low[axis] <= mid[axis] <= high[axis]:
                    raise _BuildError(f"Error Code 4: API Usage Error ({tensor.name}: for dimension number "
                                      f"{axis} in profile {index} min <= opt <= max does not hold "
                                      f"(got {got}).)")
                if size != -1 and not low[axis] == mid[axis] == high[axis] == size:
                    raise _BuildError(f"Error Code 4: API Usage Error ({tensor.name}: for dimension number "
                                      f"{axis} in profile {index} does not match network definition "
                                      f"(got {got}), expected min=opt=max={size}).)")
            shapes[tensor.name] = (low, mid, high)
        resolved.append(shapes)
    return resolved


def _plan_layers(model: onnx.ModelProto, *, strongly_typed: bool, flags: set[str], forced: str | None,
                 warn: Any) -> tuple[list[dict[str, Any]], str | None]:
    """The engine's layers with the datatypes a real build reports, and the precision outputs round to.

    Weakly typed (TensorRT 10's default): the builder flags choose. Compute layers (Conv, Gemm,
    MatMul) run Int8/FP8 only with the flag AND Q/DQ nodes of that type around them (explicit
    quantization), else Half with FP16, BF16 with BF16, else Float; other layers Half with FP16,
    else Float. Strongly typed (11 always, 10 with the flag): the ONNX types choose.
    """
    graph = model.graph
    tensor_types, _ = _tensor_info(model)
    nodes = [node for node in graph.node if node.op_type != "Constant"]  # constants become weights
    weights = {t.name for t in graph.initializer}
    weights.update(out for node in graph.node if node.op_type == "Constant" for out in node.output)
    producer = {out: node for node in nodes for out in node.output if out}
    consumers: dict[str, list[onnx.NodeProto]] = {}
    for node in nodes:
        for name in node.input:
            if name:
                consumers.setdefault(name, []).append(node)

    def dequantized(name: str) -> str | None:
        """The type ("Int8" or "FP8") of the DequantizeLinear that ``name`` comes out of, if any."""
        node = producer.get(name)
        if node is None or node.op_type != "DequantizeLinear":
            return None
        kind = tensor_types.get(node.input[0])
        if kind is None and len(node.input) > 2 and node.input[2]:
            kind = tensor_types.get(node.input[2])
        if kind is None and node.input[0] in producer and producer[node.input[0]].op_type == "QuantizeLinear":
            kind = 2  # QuantizeLinear without a zero point quantizes to uint8
        return "Int8" if kind in _ONNX_INT8 else "FP8" if kind in _ONNX_FP8 else None

    def quantized(node: onnx.NodeProto) -> str | None:
        if node.op_type not in _COMPUTE_OPS:
            return None
        kinds = {dequantized(name) for name in node.input if name}
        return "FP8" if "FP8" in kinds else "Int8" if "Int8" in kinds else None

    def own_precision(node: onnx.NodeProto) -> str:
        kinds = {tensor_types.get(name) for name in (*node.input, *node.output) if name}
        return "FP8" if kinds & _ONNX_FP8 else "Half" if 10 in kinds else "BF16" if 16 in kinds else "Float"

    requested = sorted(flags & {"FP16", "BF16", "INT8", "FP8"})
    has_qdq = any(node.op_type in _QDQ_OPS for node in nodes)
    if strongly_typed and requested:
        warn(f"Precision flags ({', '.join(requested)}) are ignored for a strongly typed network: "
             "the network's own types decide.")
    if not strongly_typed and "INT8" in flags and not has_qdq:
        warn("Calibrator is not being used. Users must provide dynamic range for all tensors that are not "
             "Int32 or Bool. Without Q/DQ nodes or calibration INT8 is not used.")

    precision: dict[int, str] = {}
    overridden: list[str] = []
    for index, node in enumerate(nodes):
        kind = quantized(node)
        if strongly_typed:
            natural = kind or own_precision(node)
        elif kind == "Int8" and "INT8" in flags:
            natural = "Int8"
        elif kind == "FP8" and "FP8" in flags:
            natural = "FP8"
        elif "FP16" in flags:
            natural = "Half"
        elif "BF16" in flags and node.op_type in _COMPUTE_OPS:
            natural = "BF16"
        else:
            natural = "Float"
        precision[index] = forced or natural
        if forced and natural != forced and not overridden:
            overridden.extend((node.name or node.op_type, natural))
    if overridden:
        # The trap built_precision emulates: a build that does not give the precision asked for
        # and says so only in a warning.
        warn(f"Layer {overridden[0]} was asked to run in {overridden[1]}, but no {overridden[1]} kernel was "
             f"selected: the engine runs it, and every other layer, in {forced}.")
    # Q/DQ pairs around a quantized compute layer are fused into it: they are no layers of their own.
    fused: set[int] = set()
    position = {id(node): index for index, node in enumerate(nodes)}
    for index, node in enumerate(nodes):
        if node.op_type == "DequantizeLinear":
            users = consumers.get(node.output[0], [])
            if users and all(u.op_type in _COMPUTE_OPS and precision[position[id(u)]] in ("Int8", "FP8")
                             for u in users):
                fused.add(index)

    def quantized_layer(node: onnx.NodeProto | None) -> bool:
        return (node is not None and node.op_type in _COMPUTE_OPS
                and precision[position[id(node)]] in ("Int8", "FP8"))

    for index, node in enumerate(nodes):
        if node.op_type == "QuantizeLinear":
            # Fused into the DQs it feeds, or into the quantized layer it follows (whose output
            # is then quantized: TensorRT's "Conv + Q" fusion).
            users = consumers.get(node.output[0], [])
            if (users and all(position[id(u)] in fused for u in users)) or quantized_layer(
                    producer.get(node.input[0])):
                fused.add(index)

    def source(name: str) -> str:
        """The tensor a layer really reads: through fused Q/DQ nodes back to the activation."""
        while name in producer and position[id(producer[name])] in fused:
            name = producer[name].input[0]
        return name

    fallback = "Half" if "FP16" in flags else "Float"
    int8_runs = strongly_typed or "INT8" in flags or forced == "Int8"

    def side_type(node: onnx.NodeProto, layer_precision: str, name: str, is_output: bool) -> str:
        own = tensor_types.get(name)
        if own is not None and own not in _ONNX_FLOAT_TEXT:
            if node.op_type in _QDQ_OPS and own in _ONNX_INT8 and not int8_runs:
                return layer_precision  # Q/DQ without INT8 in a weakly typed build: fake quantization
            return _TYPE_TEXT.get(_ONNX_TO_TRT.get(own, ""), "Int32")
        if forced:
            return forced
        if layer_precision in ("Int8", "FP8"):
            users = consumers.get(name, [])
            if not is_output or any(position[id(u)] in fused for u in users):
                return layer_precision
            return _ONNX_FLOAT_TEXT.get(own or 1, "Float") if strongly_typed else fallback
        if strongly_typed:
            return _ONNX_FLOAT_TEXT.get(own or 1, "Float")
        return layer_precision

    layers: list[dict[str, Any]] = []
    for index, node in enumerate(nodes):
        if index in fused:
            continue
        layer_precision = precision[index]
        name = node.name or f"node_of_{node.output[0]}"
        layer_type = _LAYER_TYPES.get(node.op_type, "PointWiseV2")
        inputs = []
        for tensor in node.input:
            real = source(tensor) if tensor else ""
            if not real or real in weights:
                continue
            datatype = side_type(node, layer_precision, real, False)
            if node.op_type == "DequantizeLinear" and real != tensor:
                # Reads the quantized output of the layer its QuantizeLinear was fused into.
                datatype = "FP8" if tensor_types.get(tensor) in _ONNX_FP8 else "Int8"
            inputs.append([real, real, datatype])
        outputs = [[t, t, side_type(node, layer_precision, t, True)] for t in node.output if t]
        tactic = (f"0x{hashlib.sha1(f'{name}{layer_precision}'.encode()).hexdigest()[:16]}"
                  if layer_type.startswith("Cask") else "0x0000000000000000")
        layers.append({"name": name, "type": layer_type, "precision": layer_precision, "inputs": inputs,
                       "outputs": outputs, "tactic": tactic, "onnx": node.name})

    # A weakly typed engine that does not compute in Float converts each float input first.
    if not strongly_typed or forced:
        graph_inputs = [v.name for v in graph.input if v.name not in weights]
        for tensor in graph_inputs:
            if tensor_types.get(tensor) != 1:
                continue
            users = [(layer, entry) for layer in layers for entry in layer["inputs"]
                     if entry[1] == tensor and entry[2] != "Float"]
            if not users:
                continue
            first, first_entry = users[0]
            position_in_first = first["inputs"].index(first_entry)
            reformatted = f"Reformatted Input Tensor {position_in_first} to {first['name']}"
            target = first_entry[2]
            for _, entry in users:
                if entry[2] == target:
                    entry[0] = reformatted
            layers.insert(layers.index(first), {
                "name": f"Reformatting CopyNode for Input Tensor {position_in_first} to {first['name']}",
                "type": "Reformat", "precision": target, "inputs": [[tensor, tensor, "Float"]],
                "outputs": [[reformatted, tensor, target]], "tactic": "0x0000000000000000", "onnx": ""})

    kinds = {layer["precision"] for layer in layers}
    rounding = "Half" if "Half" in kinds else "BF16" if "BF16" in kinds else None
    return layers, rounding


def _tensor_info(model: onnx.ModelProto, input_shapes: Mapping[str, Sequence[int]] | None = None,
                 ) -> tuple[dict[str, int], dict[str, list[int]]]:
    """ONNX element types and dimensions (-1 where unknown) of the model's tensors, by shape
    inference; with ``input_shapes``, for inputs of exactly those shapes."""
    work = onnx.ModelProto()
    work.CopyFrom(model)
    if input_shapes:
        del work.graph.value_info[:]
        for value in work.graph.input:
            if value.name in input_shapes:
                sizes = input_shapes[value.name]
                for dim, size in zip(value.type.tensor_type.shape.dim, sizes, strict=False):
                    dim.dim_value = int(size)
    try:
        work = onnx.shape_inference.infer_shapes(work, strict_mode=False, data_prop=True)
    except Exception:  # noqa: BLE001 - an op ONNX does not know: keep what the model declares
        pass
    tensor_types: dict[str, int] = {}
    dims: dict[str, list[int]] = {}
    for value in (*work.graph.input, *work.graph.value_info, *work.graph.output):
        if not value.type.HasField("tensor_type"):
            continue
        tensor_types[value.name] = value.type.tensor_type.elem_type
        if value.type.tensor_type.HasField("shape"):
            dims[value.name] = list(_value_shape(value))
    for initializer in work.graph.initializer:
        tensor_types[initializer.name] = initializer.data_type
        dims[initializer.name] = list(initializer.dims)
    for node in work.graph.node:
        if node.op_type == "Constant":
            for attribute in node.attribute:
                if attribute.name == "value":
                    tensor_types[node.output[0]] = attribute.t.data_type
                    dims[node.output[0]] = list(attribute.t.dims)
    return tensor_types, dims


def _session(onnx_bytes: bytes) -> Any:
    """An ONNX Runtime CPU session of the model, shared by every engine holding the same model."""
    key = hashlib.sha256(onnx_bytes).digest()
    session = _SESSIONS.get(key)
    if session is None:
        import onnxruntime

        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3  # ONNX Runtime's own warnings are no TensorRT messages
        session = onnxruntime.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        if len(_SESSIONS) >= _MAX_SESSIONS:
            _SESSIONS.pop(next(iter(_SESSIONS)))
        _SESSIONS[key] = session
    return session


def _output_shapes_by_running(session: Any, inputs: Sequence[tuple[str, str]],
                              shapes: Mapping[str, Sequence[int]], outputs: Sequence[str],
                              ) -> dict[str, tuple[int, ...]]:
    """The output shapes for inputs of ``shapes``: run the model once on zeros."""
    feeds = {name: np.zeros(tuple(shapes[name]), dtype=_NUMPY[dtype]) for name, dtype in inputs}
    results = session.run(list(outputs), feeds)
    return {name: tuple(int(d) for d in np.shape(value))
            for name, value in zip(outputs, results, strict=True)}


# ----------------------------------------------------------------------------- plans and runtime


class _HostMemory:
    """Memory TensorRT owns (a plan, a timing cache), with Python's buffer protocol:
    ``bytes(host_memory)``, ``memoryview(host_memory)``."""

    __slots__ = ()
    _api: _Api

    @property
    def nbytes(self) -> int:
        """The size in bytes."""
        return ctypes.sizeof(self)

    @property
    def dtype(self) -> Any:
        """The DataType of the elements: bytes."""
        return self._api.DataType.UINT8


class _PlanError(Exception):
    """Bytes that are no plan of this TensorRT version; the message is TensorRT's."""


def _read_plan(api: _Api, data: bytes) -> tuple[dict[str, Any], bytes]:
    """The metadata and ONNX bytes of a plan; _PlanError for anything else."""
    serialization = ("IRuntime::deserializeCudaEngine: Error Code 1: Serialization (Serialization "
                     "assertion {})")
    if not data.startswith(_PLAN_MAGIC):
        raise _PlanError(serialization.format("plan->header.magicTag == rt::kPLAN_MAGIC_TAG failed.Magic tag "
                                              "does not match"))
    start = len(_PLAN_MAGIC) + 16
    if len(data) < start:
        raise _PlanError(serialization.format("sizeRead == size failed.Plan is truncated"))
    header_size, onnx_size = struct.unpack_from("<QQ", data, len(_PLAN_MAGIC))
    if start + header_size + onnx_size != len(data):
        raise _PlanError(serialization.format("sizeRead == size failed.Plan size does not match its header"))
    try:
        meta = json.loads(data[start:start + header_size])
        if meta["format"] != _PLAN_FORMAT or not _PLAN_KEYS <= set(meta):
            raise ValueError("unknown plan format")
        version = str(meta["version"])
    except (ValueError, KeyError, TypeError):
        raise _PlanError(serialization.format("header.isValid() failed.Plan header is corrupt")) from None
    if version != api.version:
        raise _PlanError("IRuntime::deserializeCudaEngine: Error Code 6: API Usage Error (The engine plan "
                         "file is not compatible with this version of TensorRT, expecting library version "
                         f"{api.version} got {version}, please rebuild.)")
    return meta, data[start + header_size:]


class _Runtime(_Strict):
    """Deserializes plans into engines."""

    _api: _Api

    def __init__(self, logger: Any) -> None:
        self._logger = self._api.check_logger(logger, "Runtime.__init__")

    def deserialize_cuda_engine(self, serialized_engine: Any) -> Any:
        """The ICudaEngine of a plan (any buffer), or None after an ERROR through the logger."""
        api = self._api
        try:
            meta, onnx_bytes = _read_plan(api, bytes(memoryview(serialized_engine)))
        except _PlanError as error:
            api.log(self._logger, "ERROR", str(error))
            return None
        return api.ICudaEngine._create(meta, onnx_bytes, self._logger)


class _CudaEngine(_Internal):
    """A built engine: its IO tensors, layers and memory needs; makes execution contexts."""

    def _setup(self, meta: dict[str, Any], onnx_bytes: bytes, logger: Any) -> None:
        self._meta = meta
        self._onnx = onnx_bytes
        self._logger = logger
        self._io = {tensor["name"]: tensor for tensor in meta["io"]}
        self._io_names = [tensor["name"] for tensor in meta["io"]]
        self._input_names = [t["name"] for t in meta["io"] if t["mode"] == "INPUT"]
        self._output_names = [t["name"] for t in meta["io"] if t["mode"] == "OUTPUT"]
        self._model: onnx.ModelProto | None = None
        self._info_cache: dict[Any, tuple[dict[str, int], dict[str, list[int]]]] = {}
        self._output_cache: dict[Any, dict[str, tuple[int, ...]]] = {}

    def _error(self, message: str) -> None:
        self._api.log(self._logger, "ERROR", message)

    def _tensor(self, name: str, function: str) -> dict[str, Any] | None:
        tensor = self._io.get(name)
        if tensor is None:
            self._error(f"ICudaEngine::{function}: Error Code 3: API Usage Error (Parameter check failed, "
                        f"condition: tensor name {name!r} is not an input or output of the engine.)")
        return tensor

    @property
    def num_io_tensors(self) -> int:
        """The number of input and output tensors."""
        return len(self._io_names)

    @property
    def num_layers(self) -> int:
        """The number of layers of the built engine."""
        return len(self._meta["layers"])

    @property
    def num_optimization_profiles(self) -> int:
        """The number of optimization profiles (at least 1)."""
        return len(self._meta["profiles"])

    @property
    def profiling_verbosity(self) -> Any:
        """The profiling verbosity the engine was built with."""
        return self._api.ProfilingVerbosity[self._meta["verbosity"]]

    @property
    def device_memory_size_v2(self) -> int:
        """Device memory an execution context needs, in bytes."""
        return int(self._meta["device_memory"])

    def get_tensor_name(self, index: int) -> str | None:
        """The name of IO tensor ``index`` (inputs first), or None past the end."""
        return self._io_names[index] if 0 <= index < len(self._io_names) else None

    def get_tensor_mode(self, name: str) -> Any:
        """INPUT or OUTPUT; NONE for a name that is neither."""
        tensor = self._io.get(name)
        return self._api.TensorIOMode[tensor["mode"] if tensor else "NONE"]

    def get_tensor_dtype(self, name: str) -> Any:
        """The DataType of IO tensor ``name``."""
        tensor = self._tensor(name, "getTensorDataType")
        return self._api.DataType[tensor["dtype"] if tensor else "FLOAT"]

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        """The dimensions of IO tensor ``name``, -1 for a dynamic one."""
        tensor = self._tensor(name, "getTensorShape")
        return tuple(tensor["shape"]) if tensor else ()

    def get_tensor_profile_shape(self, name: str, profile_index: int) -> list[tuple[int, ...]]:
        """[min, opt, max] of input ``name`` in profile ``profile_index``."""
        profiles = self._meta["profiles"]
        if not 0 <= profile_index < len(profiles) or name not in profiles[profile_index]:
            self._error(f"ICudaEngine::getProfileShape: Error Code 3: API Usage Error (Parameter check "
                        f"failed, condition: {name!r} is an input and profile {profile_index} exists.)")
            return []
        return [tuple(shape) for shape in profiles[profile_index][name]]

    def create_execution_context(self) -> Any:
        """A context to run the engine with."""
        return self._api.IExecutionContext._create(self)

    def create_engine_inspector(self) -> Any:
        """An inspector that describes the engine's layers."""
        return self._api.EngineInspector._create(self)

    def serialize(self) -> Any:
        """The plan again, as IHostMemory."""
        header = json.dumps(self._meta, sort_keys=True).encode()
        plan = _PLAN_MAGIC + struct.pack("<QQ", len(header), len(self._onnx)) + header + self._onnx
        return self._api.host_memory(plan)

    @property
    def _dynamic(self) -> bool:
        return any(-1 in self._io[name]["shape"] for name in self._input_names)

    def _onnx_model(self) -> onnx.ModelProto:
        if self._model is None:
            self._model = onnx.load_from_string(self._onnx)
        return self._model

    @staticmethod
    def _key(shapes: Mapping[str, Sequence[int]] | None) -> Any:
        if shapes is None:
            return None
        return tuple(sorted((name, tuple(int(d) for d in shape)) for name, shape in shapes.items()))

    def _info(self, shapes: Mapping[str, Sequence[int]] | None,
              ) -> tuple[dict[str, int], dict[str, list[int]]]:
        """ONNX types and dimensions of every tensor for inputs of ``shapes`` (None: symbolic)."""
        key = self._key(shapes)
        if key not in self._info_cache:
            self._info_cache[key] = _tensor_info(self._onnx_model(), shapes)
        return self._info_cache[key]

    def _activation_bytes(self, shapes: Mapping[str, Sequence[int]]) -> int:
        """What the tensors the model computes for inputs of ``shapes`` take, inputs included."""
        tensor_types, dims = self._info(shapes)
        weights = {initializer.name for initializer in self._onnx_model().graph.initializer}
        return sum(math.prod(shape) * _ONNX_ITEMSIZE.get(tensor_types.get(name, 1), 4)
                   for name, shape in dims.items() if name not in weights and all(d >= 0 for d in shape))

    def _dims(self, shapes: Mapping[str, Sequence[int]] | None) -> dict[str, list[int]]:
        """Every tensor's dimensions for inputs of ``shapes`` (None: symbolic, -1 for dynamic)."""
        dims = dict(self._info(shapes)[1])
        for name in self._input_names:
            dims[name] = list(shapes[name]) if shapes is not None else list(self._io[name]["shape"])
        if shapes is not None:
            dims.update({n: list(s) for n, s in self._output_shapes(shapes).items()})
        return dims

    def _output_shapes(self, shapes: Mapping[str, Sequence[int]]) -> dict[str, tuple[int, ...]]:
        """The output shapes for inputs of ``shapes``: by shape inference, else by running the
        model once on zeros (cached)."""
        key = self._key(shapes)
        if key not in self._output_cache:
            static = {n: tuple(self._io[n]["shape"]) for n in self._output_names}
            inputs = [(n, self._io[n]["dtype"]) for n in self._input_names]
            inferred = self._info(shapes)[1]
            resolved = {n: tuple(inferred[n]) for n in self._output_names
                        if len(inferred.get(n, ())) == len(static[n]) and all(d >= 0 for d in inferred[n])}
            if all(-1 not in s for s in static.values()):
                self._output_cache[key] = static
            elif len(resolved) == len(static):
                self._output_cache[key] = resolved
            elif (not all(d in _NUMPY for _, d in inputs)
                  or self._activation_bytes(shapes) > _HOST_EXECUTION_LIMIT):
                return static
            else:
                try:
                    self._output_cache[key] = _output_shapes_by_running(_session(self._onnx), inputs, shapes,
                                                                        self._output_names)
                except Exception:  # noqa: BLE001 - shapes ONNX Runtime rejects: leave them unresolved
                    return static
        return self._output_cache[key]


class _CudaEngine10:
    """TensorRT 10's ICudaEngine members that 11 removed."""

    @property
    def device_memory_size(self) -> int:
        """Device memory an execution context needs, in bytes (deprecated in 10)."""
        return int(self._meta["device_memory"])


class _ExecutionContext(_Internal):
    """Runs an engine: input shapes and tensor addresses, then ``execute_async_v3``."""

    def _setup(self, engine: Any) -> None:
        self._engine = engine
        self._profile = 0
        self._addresses: dict[str, int] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._reset_shapes()

    def _reset_shapes(self) -> None:
        engine = self._engine
        self._shapes = {name: tuple(engine._io[name]["shape"]) for name in engine._input_names
                        if -1 not in engine._io[name]["shape"]}

    def _error(self, message: str) -> None:
        self._engine._error(message)

    @property
    def engine(self) -> Any:
        """The engine this context runs."""
        return self._engine

    @property
    def active_optimization_profile(self) -> int:
        """The optimization profile in use (0 unless changed)."""
        return self._profile

    def set_optimization_profile_async(self, profile_index: int, stream_handle: int) -> bool:
        """Switch to another optimization profile; the dynamic input shapes must be set again."""
        if not 0 <= profile_index < self._engine.num_optimization_profiles:
            self._error(f"IExecutionContext::setOptimizationProfileAsync: Error Code 3: API Usage Error "
                        f"(Parameter check failed, condition: profileIndex >= 0 && profileIndex < "
                        f"mEngine.getNbOptimizationProfiles(). Profile index {profile_index} is out of "
                        "range.)")
            return False
        self._profile = profile_index
        self._reset_shapes()
        return True

    def set_input_shape(self, name: str, shape: Sequence[int]) -> bool:
        """Set the shape of input ``name``; False (after an ERROR) outside the engine's or profile's range."""
        engine = self._engine
        tensor = engine._io.get(name)
        if tensor is None or tensor["mode"] != "INPUT":
            self._error(f"IExecutionContext::setInputShape: Error Code 3: API Usage Error (Parameter check "
                        f"failed, condition: {name!r} is an input tensor of the engine.)")
            return False
        dims = tuple(int(d) for d in shape)
        expected = tensor["shape"]
        if len(dims) != len(expected) or any(e not in (-1, d) for e, d in zip(expected, dims, strict=True)):
            self._error("IExecutionContext::setInputShape: Error Code 3: API Usage Error (Parameter check "
                        "failed, condition: engineDims.d[i] == dims.d[i]. Static dimension mismatch while "
                        f"setting input shape for {name}. Set dimensions are {_dims_text(dims)}. Expected "
                        f"dimensions are {_dims_text(expected)}.)")
            return False
        low, _, high = engine._meta["profiles"][self._profile][name]
        if not all(a <= d <= b for a, d, b in zip(low, dims, high, strict=True)):
            self._error("IExecutionContext::setInputShape: Error Code 3: API Usage Error (Parameter check "
                        f"failed, condition: satisfyProfile. Set dimension {_dims_text(dims)} for tensor "
                        f"{name} does not satisfy any optimization profiles. Valid range for profile "
                        f"{self._profile}: {_dims_text(low)}..{_dims_text(high)}.)")
            return False
        self._shapes[name] = dims
        return True

    def _all_shapes_set(self) -> bool:
        return all(name in self._shapes for name in self._engine._input_names)

    def get_tensor_shape(self, name: str) -> tuple[int, ...]:
        """An IO tensor's shape: an input's as set, an output's as it follows from the inputs'."""
        engine = self._engine
        tensor = engine._tensor(name, "getTensorShape")
        if tensor is None:
            return ()
        if tensor["mode"] == "INPUT":
            return self._shapes.get(name, tuple(tensor["shape"]))
        if self._all_shapes_set():
            return tuple(engine._output_shapes(self._shapes).get(name, tensor["shape"]))
        return tuple(tensor["shape"])

    def infer_shapes(self) -> list[str]:
        """The inputs whose shapes are still missing ([] when all are set)."""
        return [name for name in self._engine._input_names if name not in self._shapes]

    def set_tensor_address(self, name: str, memory: int) -> bool:
        """Bind IO tensor ``name`` to device (here: host) address ``memory``."""
        if name not in self._engine._io:
            self._error(f"IExecutionContext::setTensorAddress: Error Code 3: API Usage Error (Parameter "
                        f"check failed, condition: {name!r} is an input or output tensor of the engine.)")
            return False
        self._addresses[name] = int(memory)
        return True

    def get_tensor_address(self, name: str) -> int:
        """The address bound to IO tensor ``name`` (0 when none)."""
        return self._addresses.get(name, 0)

    def execute_async_v3(self, stream_handle: int) -> bool:
        """Run the engine on the bound memory; False (after an ERROR) when a shape or address is missing."""
        engine = self._engine
        engine._api.enqueued_streams.append(int(stream_handle))
        if not int(stream_handle):
            # What TensorRT says on the default stream (it then synchronises around the work).
            engine._api.log(engine._logger, "WARNING", _DEFAULT_STREAM_WARNING)
        missing = self.infer_shapes()
        if missing:
            self._error("IExecutionContext::enqueueV3: Error Code 3: API Usage Error (Parameter check "
                        "failed, condition: inputDimensionSpecified && inputShapesSpecified. Not all shapes "
                        "are specified. Following input tensors' dimensions are not specified: "
                        f"{', '.join(missing)}.)")
            return False
        for name in engine._io_names:
            if not self._addresses.get(name):
                kind = "input" if engine._io[name]["mode"] == "INPUT" else "output"
                self._error("IExecutionContext::enqueueV3: Error Code 3: API Usage Error (Parameter check "
                            "failed, condition: mContext.profileObliviousBindings.at(profileObliviousIndex) "
                            "|| getPtrOrNull(mOutputAllocators, profileObliviousIndex). Address is not set "
                            f"for {kind} tensor {name}. Call setInputTensorAddress or setTensorAddress "
                            "before enqueue/execute.)")
                return False
        unsupported = [n for n in engine._io_names if engine._io[n]["dtype"] not in _NUMPY]
        if unsupported:
            self._error(f"IExecutionContext::enqueueV3: Error Code 9: API Usage Error (the stand-in cannot "
                        f"hold {', '.join(unsupported)} in host memory: its datatype has no NumPy type.)")
            return False
        needed = engine._activation_bytes(self._shapes)
        if needed > _HOST_EXECUTION_LIMIT:
            self._error(f"IExecutionContext::enqueueV3: Error Code 2: OutOfMemory (Requested size was "
                        f"{needed} bytes; the stand-in runs at most {_HOST_EXECUTION_LIMIT} bytes of tensors "
                        "in host memory.)")
            return False
        feeds = {name: _read_host(self._addresses[name], _NUMPY[engine._io[name]["dtype"]],
                                  self._shapes[name]) for name in engine._input_names}
        delay_s = engine._api.step_seconds.get(engine._meta["rounding"] or "Float")
        if delay_s:
            time.sleep(delay_s)
        try:
            results = _session(engine._onnx).run(engine._output_names, feeds)
        except Exception as error:  # noqa: BLE001 - ONNX Runtime's own exception types
            self._error(f"IExecutionContext::enqueueV3: Error Code 1: Cuda Runtime ({error})")
            return False
        for name, value in zip(engine._output_names, results, strict=True):
            dtype = _NUMPY[engine._io[name]["dtype"]]
            array = np.ascontiguousarray(np.asarray(value).astype(dtype, copy=False))
            array = _round(array, engine._meta["rounding"])
            if array.nbytes:
                ctypes.memmove(self._addresses[name], array.ctypes.data, array.nbytes)
        return True


def _read_host(address: int, dtype: Any, shape: Sequence[int]) -> np.ndarray:
    """A copy of the array of ``dtype`` and ``shape`` at host address ``address``."""
    count = math.prod(shape)
    nbytes = count * np.dtype(dtype).itemsize
    if not nbytes:
        return np.zeros(tuple(shape), dtype=dtype)
    buffer = (ctypes.c_char * nbytes).from_address(address)
    return np.frombuffer(buffer, dtype=dtype, count=count).reshape(tuple(shape)).copy()


def _round(array: np.ndarray, precision: str | None) -> np.ndarray:
    """Float outputs as a Half or BF16 engine would give them: rounded to that precision."""
    if array.dtype.kind != "f" or precision not in ("Half", "BF16"):
        return array
    if precision == "Half":
        return array.astype(np.float16).astype(array.dtype)
    bits = array.astype(np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000  # round to nearest even
    return bits.astype(np.uint32).view(np.float32).astype(array.dtype)


class _EngineInspector(_Internal):
    """Describes an engine's layers, as much as its profiling verbosity allows."""

    def _setup(self, engine: Any) -> None:
        self._engine = engine
        self._context: Any = None

    @property
    def execution_context(self) -> Any:
        """The context whose input shapes resolve the dynamic dimensions (None: unresolved)."""
        return self._context

    @execution_context.setter
    def execution_context(self, context: Any) -> None:
        if context is not None:
            _require(context, self._engine._api.IExecutionContext, "execution_context")
        self._context = context

    def get_layer_information(self, layer_index: int, format: Any) -> str:
        """Layer ``layer_index``'s description in ``format`` (a LayerInformationFormat)."""
        _require(format, self._engine._api.LayerInformationFormat, "get_layer_information")
        records = self._records()
        if not 0 <= layer_index < len(records):
            return ""
        record = records[layer_index]
        return json.dumps(record) if format.name == "JSON" else _one_line(record)

    def get_engine_information(self, format: Any) -> str:
        """All layers and the bindings: JSON ``{"Layers": [...], "Bindings": [...]}``, or one line a layer."""
        _require(format, self._engine._api.LayerInformationFormat, "get_engine_information")
        records = self._records()
        bindings = list(self._engine._io_names)
        if format.name == "JSON":
            if self._engine._api.major < 11:
                return json.dumps({"Layers": records, "Bindings": bindings}, indent=2)
            # TensorRT 11 replaced the names with records (NVIDIA's IEngineInspector migration page).
            return json.dumps({"Layers": records, "I/O Tensors": self._io_records()}, indent=2)
        return "\n".join([*(_one_line(r) for r in records), "Bindings:", *bindings]) + "\n"

    def _io_records(self) -> list[dict[str, Any]]:
        engine = self._engine
        context = self._context
        shapes = context._shapes if context is not None else {}
        return [{"Name": name, "IOMode": engine._io[name]["mode"].capitalize(),
                 "DataType": _TYPE_TEXT.get(engine._io[name]["dtype"], "Float"),
                 "Dimensions": list(shapes.get(name, engine._io[name]["shape"])), "Location": "Device",
                 "IsShapeInferenceIO": False} for name in engine._io_names]

    def _records(self) -> list[Any]:
        engine = self._engine
        verbosity = engine._meta["verbosity"]
        layers = engine._meta["layers"]
        if verbosity == "NONE":
            return []
        if verbosity == "LAYER_NAMES_ONLY":
            return [layer["name"] for layer in layers]
        context = self._context
        resolved = not engine._dynamic or (context is not None and context._all_shapes_set())
        if not engine._dynamic:
            dims = engine._dims({name: engine._io[name]["shape"] for name in engine._input_names})
        else:
            dims = engine._dims(context._shapes if resolved else None)

        def tensor(entry: list[str], cask: bool) -> dict[str, Any]:
            display, name, datatype = entry
            shape = dims.get(name, [])
            if not resolved:
                text = _DYNAMIC_FORMAT
            elif cask and len(shape) == 4 and datatype in _FORMATS_4D:
                text = _FORMATS_4D[datatype]
            else:
                text = _FORMATS.get(datatype, _FORMATS["Float"])
            if engine._api.major < 11:
                return {"Name": display, "Location": "Device", "Dimensions": shape, "Format/Datatype": text}
            # TensorRT 11 splits the phrase: the layout in "Format", the type in "Datatype".
            kind = datatype if resolved else _DYNAMIC_FORMAT
            return {"Name": display, "Location": "Device", "Dimensions": shape, "Format": text,
                    "Datatype": kind}

        records = []
        for layer in layers:
            cask = layer["type"].startswith("Cask")
            record = {"Name": layer["name"], "LayerType": layer["type"],
                      "Inputs": [tensor(e, cask) for e in layer["inputs"]],
                      "Outputs": [tensor(e, cask) for e in layer["outputs"]],
                      "TacticValue": layer["tactic"], "StreamId": 0}
            if layer["onnx"]:
                record["Metadata"] = f"[ONNX Layer: {layer['onnx']}]"
            records.append(record)
        return records


def _one_line(record: Any) -> str:
    """A layer record as TensorRT's ONELINE format writes it."""
    if isinstance(record, str):
        return record

    def tensors(entries: list[dict[str, Any]]) -> str:
        return "[" + ", ".join("{ " + ", ".join(f"{k}: {_dims_text(v) if k == 'Dimensions' else v}"
                                                  for k, v in e.items()) + " }" for e in entries) + "]"

    return ", ".join(f"{key}: {tensors(value) if key in ('Inputs', 'Outputs') else value}"
                     for key, value in record.items())
