"""The house by stage, held to its rules from the source (docs/layout.md): no import circle
between modules or between the stage folders (an arrow back up is one), built-in plugins that
import autotune only through the SDK and no other plugin's folder, and product modules a reader
can take in (no module over 400 lines, no function over 80). Imports inside functions count as
much as those at the top."""

from __future__ import annotations

import ast
import itertools
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
CORE, PLUGINS = REPO / "autotune", REPO / "plugins"
MAX_MODULE_LINES, MAX_FUNCTION_LINES = 400, 80


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[0] == "plugins":
        parts[0] = "autotune_plugins"
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(path): path for folder in (CORE, PLUGINS) for path in folder.rglob("*.py")}


def imports(path: Path) -> set[str]:
    """The project modules ``path`` imports, anywhere in it: ``from a import b`` names ``a.b``
    where that is a module, else ``a``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name in MODULES}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            for alias in node.names:
                name = f"{node.module}.{alias.name}"
                found.add(name if name in MODULES else node.module)
    return {name for name in found if name in MODULES}


GRAPH = {name: imports(path) - {name} for name, path in MODULES.items()}


def room(module: str) -> str:
    """A stage folder (autotune.measure, autotune_plugins.torch) or a loose top-level module."""
    parts = module.split(".")
    if parts[0] == "autotune" and len(parts) > 1 and (CORE / parts[1]).is_dir():
        return ".".join(parts[:2])
    if parts[0] == "autotune_plugins" and len(parts) > 1 and (PLUGINS / parts[1]).is_dir():
        return ".".join(parts[:2])
    return module


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of two or more nodes (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            members = []
            while True:
                member = stack.pop()
                members.append(member)
                if member == node:
                    break
            if len(members) > 1:
                found.append(sorted(members))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_another_that_imports_it_back():
    assert circles(GRAPH) == []


def test_no_stage_folder_imports_one_that_imports_it_back():
    rooms: dict[str, set[str]] = {}
    for source, targets in GRAPH.items():
        rooms.setdefault(room(source), set()).update(room(t) for t in targets if room(t) != room(source))
    assert circles(rooms) == []


def test_the_package_face_is_imported_by_no_module_of_its_own():
    # ``autotune/__init__`` loads the API on first use; a module importing it would close a loop.
    assert [source for source, targets in GRAPH.items() if "autotune" in targets] == []


def test_built_in_plugins_import_autotune_only_through_the_sdk():
    wrong = sorted(f"{source} -> {target}" for source, targets in GRAPH.items()
                   if source.startswith("autotune_plugins") for target in targets
                   if target.startswith("autotune.") and not target.startswith("autotune.sdk"))
    assert wrong == []


def test_no_plugin_imports_another_plugins_folder():
    def folder(module: str) -> str:
        return module.split(".")[1] if module.count(".") else ""

    wrong = sorted(f"{source} -> {target}" for source, targets in GRAPH.items()
                   if source.startswith("autotune_plugins.") for target in targets
                   if target.startswith("autotune_plugins.")
                   and folder(target) not in (folder(source), "common"))
    common_up = sorted(f"{source} -> {target}" for source, targets in GRAPH.items()
                       if source.startswith("autotune_plugins.common") for target in targets
                       if target.startswith("autotune_plugins.") and folder(target) != "common")
    assert wrong == [] and common_up == []


def test_the_core_imports_no_plugin():
    assert [f"{s} -> {t}" for s, targets in GRAPH.items() if s.startswith("autotune.")
            for t in targets if t.startswith("autotune_plugins")] == []


@pytest.mark.parametrize("path", sorted(MODULES.values()), ids=lambda path: str(path.relative_to(REPO)))
def test_modules_and_functions_stay_readable(path):
    lines = path.read_text().splitlines()
    assert len(lines) <= MAX_MODULE_LINES, f"{len(lines)} lines"
    long = [f"{node.name} {node.end_lineno - node.lineno + 1} lines"
            for node in ast.walk(ast.parse("\n".join(lines)))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
            and node.end_lineno - node.lineno + 1 > MAX_FUNCTION_LINES]
    assert long == []


def test_the_checks_would_see_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert circles({"a": {"b"}, "b": set()}) == []
    assert list(itertools.chain.from_iterable(circles({"x": {"y"}, "y": {"x"}}))) == ["x", "y"]
