"""What ONNX Runtime says when it fails, read back into one line a user can act on.

ONNX Runtime raises a handful of exception types for everything and logs the rest (a
provider library that did not load) from C++ with source locations and error codes. This
reads its words: the library that did not load and the versions it wants, whether a model
file is the problem (an opset or IR version newer than this build loads, an unknown
operator) and the hint that fixes it. Imported by the ONNX Runtime plugin's ``sessions`` and
by ``onnx_variants``.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path

import onnxruntime

from autotune.sdk import UserError, one_line

#: ORT exception types (onnxruntime.capi.onnxruntime_pybind11_state) that only the model causes.
_MODEL_ERROR_TYPES = frozenset({"InvalidGraph", "InvalidProtobuf", "NoSuchFile", "NoModel"})
_OPSET_TOO_NEW = re.compile(r"Opset (\d+) is under development.*support for domain (\S+) is till opset (\d+)")
_IR_TOO_NEW = re.compile(r"Unsupported model IR version: (\d+), max supported IR version: (\d+)")
_UNKNOWN_OPERATOR = re.compile(r"No Op registered for|is not a registered function/op|"
                               r"Could not find an implementation for")

#: "com.example:Foo(-1) is not a registered function/op": an operator of another domain.
_CUSTOM_OPERATOR = re.compile(r"[\w.]+\.[\w.]+:\w+\(-?\d+\) is not a registered function/op")
_LOG_HEADER = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+ \[([VIWEF]):onnxruntime:[^\]]*\]\s*")
#: "/onnxruntime_src/.../file.cc:46 void onnxruntime::Class::Method(const Type&, int) " before a message.
_SOURCE_LOCATION = re.compile(r"^/\S+\.(?:cc|cpp|cu|h|hpp):\d+\s+"
                              r"[^()\[]*\((?:[^()]|\([^()]*\))*\)(?: const)?\s*")
_ERROR_CODE = re.compile(r"^\[ONNXRuntimeError\] : \d+ : [A-Z_]+ : ")
#: How ORT wraps every failure of reading a model file, before any provider is involved.
_LOAD_FAILED = re.compile(r"^Load model from .+? failed:\s*")
#: ORT's closing line of advice after the lines that say what is wrong.
_ADVICE = re.compile(r"^Please fix either the inputs")
_LIBRARY_LOAD = re.compile(r"Failed to load library \S+ with error: (.+)")
_REQUIREMENT = re.compile(r"Require (.+?)\.\s+Please")


def library_failure(log: str) -> str | None:
    """``libcublasLt.so.13: cannot open shared object file: ...`` from ORT's log, with the
    versions it says it needs when it says so."""
    library = requirement = None
    for _, message in log_messages(log):
        if library is None and (match := _LIBRARY_LOAD.search(message)):
            library = match.group(1).strip()
        if requirement is None and (match := _REQUIREMENT.search(message)):
            requirement = match.group(1)
    if library is None:
        return None
    if requirement is None:
        return library
    return f"{library} (ONNX Runtime {onnxruntime.__version__} needs {requirement})"


def log_messages(log: str) -> list[tuple[str, str]]:
    """(severity letter, message) for each line ORT logged, prefixes and colours removed."""
    messages = []
    for line in log.splitlines():
        text = one_line(line)
        header = _LOG_HEADER.match(text)
        if header:
            messages.append((header.group(1), ort_message(text[header.end():])))
    return messages


def ort_message(text: str) -> str:
    """ORT's message without its source location, C++ signature and error code, on one line:
    its first line and the lines that say what is wrong (``index: 0 Got: 8 Expected: 1``
    under "Got invalid dimensions"), without the closing advice."""
    lines = [one_line(line) for line in text.splitlines() if one_line(line)]
    kept = lines[:1] + [line for line in lines[1:] if not _ADVICE.match(line)]
    text = "; ".join(kept) if kept else ""
    previous = None
    while text != previous:
        previous = text
        for prefix in (_ERROR_CODE, _LOAD_FAILED, _SOURCE_LOCATION):
            text = prefix.sub("", text).strip()
    return text


class OnnxRuntimeError(RuntimeError):
    """ONNX Runtime's failure while running a model, its message on one line (see
    :func:`run_failure`)."""


def run_failure(error: BaseException) -> BaseException:
    """An ORT error raised while running (a wrong input shape, say) as one line that keeps
    the line saying what is wrong; any other error as it is."""
    if not is_onnxruntime_error(error):
        return error
    return OnnxRuntimeError(f"{type(error).__name__}: {ort_message(str(error))}")


def is_onnxruntime_error(error: BaseException) -> bool:
    return type(error).__module__.startswith("onnxruntime")


def is_model_error(error: BaseException) -> bool:
    if not is_onnxruntime_error(error):
        return False
    text = _ERROR_CODE.sub("", one_line(str(error)))
    return (type(error).__name__ in _MODEL_ERROR_TYPES or bool(_LOAD_FAILED.match(text))
            or bool(_OPSET_TOO_NEW.search(text))
            or bool(_IR_TOO_NEW.search(text)) or bool(_UNKNOWN_OPERATOR.search(text)))


def cannot_load(model_path: Path, error: BaseException) -> UserError:
    message = ort_message(str(error))
    start = f"ONNX Runtime {onnxruntime.__version__} cannot load {model_path}"
    if type(error).__name__ == "NoSuchFile":
        return UserError(f"{start}: no such file")
    if match := _OPSET_TOO_NEW.search(message):
        opset, domain, supported = match.groups()
        which = "opset" if domain == "ai.onnx" else f"{domain} opset"
        return UserError(f"{start}: it uses {which} {opset}, newer than the {which} {supported} it supports; "
                         f"re-export with {which} <= {supported}")
    if match := _IR_TOO_NEW.search(message):
        return UserError(f"{start}: {message}; re-export with IR version <= {match.group(2)}")
    if _CUSTOM_OPERATOR.search(message):
        return UserError(f"{start}: {message}; re-export it with standard ONNX operators")
    if _UNKNOWN_OPERATOR.search(message):
        newest = newest_opset()
        hint = f"opset <= {newest}" if newest is not None else "an older opset"
        return UserError(f"{start}: {message}; re-export with {hint}")
    return UserError(f"{start}: {message}")


@functools.cache
def newest_opset() -> int | None:
    """The newest ai.onnx opset this ONNX Runtime loads, from its own refusal of a far newer one."""
    try:
        onnxruntime.InferenceSession(identity_model(opset=10_000), providers=["CPUExecutionProvider"])
    except Exception as error:  # noqa: BLE001 - ORT raises a dozen unrelated types
        if match := _OPSET_TOO_NEW.search(str(error)):
            return int(match.group(3))
    return None


def identity_model(opset: int = 13) -> bytes:
    """A one-node model (Identity of a static 1x4 float tensor, so TensorRT builds its engine
    when the session is made), serialized: InferenceSession takes bytes."""
    from onnx import TensorProto, helper  # noqa: PLC0415 - only probes need it

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["x"], ["y"])], "probe", [x], [y])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 7  # what every ONNX Runtime this project supports reads
    return model.SerializeToString()
