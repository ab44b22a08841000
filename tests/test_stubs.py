"""The type stubs in ``typings/`` name only what the real libraries have.

pyright checks the GPU paths against ``typings/pynvml.pyi`` and ``typings/tensorrt/``
(``[tool.pyright]`` in pyproject.toml), so a stub that names a call the library lacks would
let a wrong call pass the check. Every public name a stub declares (its functions, classes,
their methods and attributes) must be one the real module has: for ``pynvml`` the installed
module itself, parameters included; for TensorRT, which is not installed here, the names its
bindings register (``tests/tensorrt_api/<version>.txt``, as ``test_tensorrt_api`` holds the
stand-in to). Names starting with an underscore are the stubs' own typing helpers.
"""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

from tests.test_tensorrt_api import REMOVED_IN_11, TENSORRT_10, TENSORRT_11, unregistered

TYPINGS = Path(__file__).resolve().parent.parent / "typings"
PYNVML_STUB = TYPINGS / "pynvml.pyi"
TENSORRT_STUB = TYPINGS / "tensorrt" / "__init__.pyi"
#: Stub-only helper classes and the real class whose fields they describe.
PYNVML_HELPERS = {"_ProcessInfo": "c_nvmlProcessInfo_v3_t"}


def _public(name: str) -> bool:
    return not name.startswith("_") or name == "__version__"


def declared(stub_text: str) -> dict[str, ast.AST]:
    """Every name the stub declares, dotted (``Builder.create_network``), with its node."""
    names: dict[str, ast.AST] = {}

    def visit(body: list[ast.stmt], prefix: str) -> None:
        for node in body:
            if isinstance(node, (ast.FunctionDef, ast.ClassDef)):
                names[prefix + node.name] = node
                if isinstance(node, ast.ClassDef):
                    visit(node.body, f"{prefix}{node.name}.")
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names[prefix + node.target.id] = node
            elif isinstance(node, ast.Assign):
                names.update({prefix + t.id: node for t in node.targets if isinstance(t, ast.Name)})

    visit(ast.parse(stub_text).body, "")
    return names


def _members(real: object) -> set[str]:
    """What a class of the real module offers: its attributes, a ctypes structure's fields,
    and what an exception instance carries."""
    members = set(dir(real))
    members |= {field[0] for field in getattr(real, "_fields_", ())}
    if isinstance(real, type) and issubclass(real, BaseException):
        import pynvml  # noqa: PLC0415

        members |= set(vars(real(pynvml.NVML_ERROR_UNKNOWN)))
    return members


def pynvml_mismatches(stub_text: str, module) -> list[str]:
    """What the stub declares that ``module`` lacks, or declares with other parameters."""
    problems = []
    for dotted, node in declared(stub_text).items():
        owner_name, _, name = dotted.rpartition(".")
        parts = dotted.split(".")
        if not _public(name) or not all(_public(part) or part in PYNVML_HELPERS for part in parts):
            continue
        if owner_name:
            owner = getattr(module, PYNVML_HELPERS.get(owner_name, owner_name), None)
            if owner is None or name not in _members(owner):
                problems.append(f"{dotted}: not in pynvml")
            continue
        real = getattr(module, name, None)
        if real is None:
            problems.append(f"{dotted}: not in pynvml")
        elif isinstance(node, ast.FunctionDef) and inspect.isfunction(real):
            stub_params = [a.arg for a in (*node.args.posonlyargs, *node.args.args)]
            real_params = list(inspect.signature(real).parameters)
            if stub_params != real_params:
                problems.append(f"{dotted}: takes {real_params} in pynvml, {stub_params} in the stub")
    return problems


def tensorrt_names(stub_text: str) -> set[str]:
    """Each public identifier the TensorRT stub declares (the parts of the dotted names)."""
    return {part for dotted in declared(stub_text) for part in dotted.split(".") if _public(part)}


def test_the_pynvml_stub_names_only_what_pynvml_has():
    import pynvml  # noqa: PLC0415

    assert pynvml_mismatches(PYNVML_STUB.read_text("utf-8"), pynvml) == []


def test_the_pynvml_check_fails_on_a_name_or_parameters_pynvml_lacks():
    import pynvml  # noqa: PLC0415

    wrong = (PYNVML_STUB.read_text("utf-8") + "\ndef nvmlDeviceGetWarpSize(handle) -> int: ...\n"
             "def nvmlDeviceGetCount(index: int) -> int: ...\n"
             "class c_nvmlMemory_t:\n    reserved: int\n")
    assert sorted(pynvml_mismatches(wrong, pynvml)) == [
        "c_nvmlMemory_t.reserved: not in pynvml",
        "nvmlDeviceGetCount: takes [] in pynvml, ['index'] in the stub",
        "nvmlDeviceGetWarpSize: not in pynvml",
    ]


@pytest.mark.parametrize("version", [TENSORRT_10, TENSORRT_11])
def test_the_tensorrt_stub_names_only_what_tensorrt_registers(version):
    names = tensorrt_names(TENSORRT_STUB.read_text("utf-8"))
    assert len(names) > 50
    # BuilderFlag.FP16 is TensorRT 10's only (the stub says so); 11 removed it.
    expected = set() if version == TENSORRT_10 else names & {"FP16"}
    assert unregistered(names, version) == expected
    assert expected <= set(REMOVED_IN_11)


def test_the_tensorrt_check_fails_on_a_name_tensorrt_lacks():
    stub = TENSORRT_STUB.read_text("utf-8")
    wrong = stub + "\nclass ICudaEngine:\n    def execute_async_v4(self) -> bool: ...\n"
    assert unregistered(tensorrt_names(wrong), TENSORRT_10) == {"execute_async_v4"}
    # A name TensorRT 11 removed is caught on 11.
    removed = TENSORRT_STUB.read_text("utf-8") + "\nclass IBuilderConfig:\n    int8_calibrator: object\n"
    assert unregistered(tensorrt_names(removed), TENSORRT_11) == {"FP16", "int8_calibrator"}
