# The calls autotune makes into TensorRT's Python bindings (which ship no types), with the
# signatures of NVIDIA's Python API reference for 10.x and 11.x (docs.nvidia.com/deeplearning/
# tensorrt, "Python API"). Every public name here is one the real bindings register:
# tests/test_stubs.py checks them against tests/tensorrt_api/<version>.txt, as
# tests/test_tensorrt_api.py does the stand-in. Names starting with an underscore are this
# stub's own typing helpers. The bindings are pybind11 (not enum.Enum) enums: each member
# is an instance of its class, with a name and a value.
#
# The runner imports the module at run time (importlib) and hands it around as a
# ModuleType; its code annotates the objects it gets back with these classes.

from collections.abc import Iterator, Sequence
from typing import ClassVar, TypeAlias

from typing_extensions import Buffer

__version__: str

class _Enum:
    @property
    def name(self) -> str: ...
    @property
    def value(self) -> int: ...

class Dims:
    def __len__(self) -> int: ...
    def __getitem__(self, index: int) -> int: ...
    def __iter__(self) -> Iterator[int]: ...

# Where the bindings take a Dims they take any sequence of ints (pybind11 converts it).
_Shape: TypeAlias = Dims | Sequence[int]

class DataType(_Enum):
    FLOAT: ClassVar[DataType]
    HALF: ClassVar[DataType]
    BF16: ClassVar[DataType]
    INT8: ClassVar[DataType]
    INT32: ClassVar[DataType]
    INT64: ClassVar[DataType]
    BOOL: ClassVar[DataType]
    UINT8: ClassVar[DataType]
    FP8: ClassVar[DataType]

class TensorIOMode(_Enum):
    NONE: ClassVar[TensorIOMode]
    INPUT: ClassVar[TensorIOMode]
    OUTPUT: ClassVar[TensorIOMode]

class BuilderFlag(_Enum):
    FP16: ClassVar[BuilderFlag]  # 10 only: TensorRT 11 removed it (strongly typed networks)
    BF16: ClassVar[BuilderFlag]
    INT8: ClassVar[BuilderFlag]
    FP8: ClassVar[BuilderFlag]
    TF32: ClassVar[BuilderFlag]

class MemoryPoolType(_Enum):
    WORKSPACE: ClassVar[MemoryPoolType]

class ProfilingVerbosity(_Enum):
    DETAILED: ClassVar[ProfilingVerbosity]

class LayerInformationFormat(_Enum):
    ONELINE: ClassVar[LayerInformationFormat]
    JSON: ClassVar[LayerInformationFormat]

class ILogger:
    class Severity(_Enum):
        INTERNAL_ERROR: ClassVar[ILogger.Severity]
        ERROR: ClassVar[ILogger.Severity]
        WARNING: ClassVar[ILogger.Severity]
        INFO: ClassVar[ILogger.Severity]
        VERBOSE: ClassVar[ILogger.Severity]

    def __init__(self) -> None: ...
    def log(self, severity: ILogger.Severity, msg: str) -> None: ...

class IHostMemory(Buffer):
    @property
    def nbytes(self) -> int: ...
    def __buffer__(self, flags: int, /) -> memoryview: ...

class ITensor:
    name: str
    shape: Dims

class INetworkDefinition:
    @property
    def num_inputs(self) -> int: ...
    def get_input(self, index: int) -> ITensor: ...

class IOptimizationProfile:
    def set_shape(self, input: str, min: _Shape, opt: _Shape, max: _Shape) -> None: ...

class ITimingCache:
    def serialize(self) -> IHostMemory: ...

class IBuilderConfig:
    profiling_verbosity: ProfilingVerbosity
    builder_optimization_level: int
    def set_memory_pool_limit(self, pool: MemoryPoolType, pool_size: int) -> None: ...
    def set_flag(self, flag: BuilderFlag) -> None: ...
    def clear_flag(self, flag: BuilderFlag) -> None: ...
    def add_optimization_profile(self, profile: IOptimizationProfile) -> int: ...
    # None where the buffer is not a timing cache TensorRT can read.
    def create_timing_cache(self, serialized_timing_cache: Buffer) -> ITimingCache | None: ...
    def set_timing_cache(self, cache: ITimingCache, ignore_mismatch: bool) -> bool: ...
    # None when no timing cache was set.
    def get_timing_cache(self) -> ITimingCache | None: ...

class Builder:
    def __init__(self, logger: ILogger) -> None: ...
    def create_network(self, flags: int = 0) -> INetworkDefinition: ...
    def create_builder_config(self) -> IBuilderConfig: ...
    def create_optimization_profile(self) -> IOptimizationProfile: ...
    # None when the build fails (the logger says why).
    def build_serialized_network(self, network: INetworkDefinition,
                                 config: IBuilderConfig) -> IHostMemory | None: ...

class ParserError:
    def desc(self) -> str: ...
    def node(self) -> int: ...
    def node_name(self) -> str: ...
    def node_operator(self) -> str: ...

class OnnxParser:
    def __init__(self, network: INetworkDefinition, logger: ILogger) -> None: ...
    def parse_from_file(self, model: str) -> bool: ...
    @property
    def num_errors(self) -> int: ...
    def get_error(self, index: int) -> ParserError: ...

class IExecutionContext:
    def set_input_shape(self, name: str, shape: _Shape) -> bool: ...
    def get_tensor_shape(self, name: str) -> Dims: ...
    def set_tensor_address(self, name: str, memory: int) -> bool: ...
    def execute_async_v3(self, stream_handle: int) -> bool: ...

class EngineInspector:
    execution_context: IExecutionContext
    def get_engine_information(self, format: LayerInformationFormat) -> str: ...

class ICudaEngine:
    @property
    def num_io_tensors(self) -> int: ...
    def get_tensor_name(self, index: int) -> str: ...
    def get_tensor_dtype(self, name: str) -> DataType: ...
    def get_tensor_mode(self, name: str) -> TensorIOMode: ...
    # Device memory an execution context takes (10 and 11; 11 dropped ``device_memory_size``).
    @property
    def device_memory_size_v2(self) -> int: ...
    # None when TensorRT cannot allocate the context's device memory.
    def create_execution_context(self) -> IExecutionContext | None: ...
    def create_engine_inspector(self) -> EngineInspector: ...

class Runtime:
    def __init__(self, logger: ILogger) -> None: ...
    # None when the plan does not load (corrupt, another TensorRT version or GPU).
    def deserialize_cuda_engine(self, serialized_engine: Buffer) -> ICudaEngine | None: ...
