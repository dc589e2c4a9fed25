"""The shape of the code: which package may import which, no import cycles, no
room over 400 lines (docs/design.md, "Layout").

The import graph is read from the source with ``ast``, not by importing it:
every ``import`` and ``from ... import`` counts, at module level and deferred
inside functions alike (a deferred import hides a cycle, it does not remove
it), except those under ``if TYPE_CHECKING:``, which never run. An import
names one module: ``from lab.report import html`` is an edge to
``lab.report.html``, ``from lab.analysis.capacity import plan_model`` one to
``lab.analysis.capacity``; the packages it passes through are not counted.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest
from paths import ROOT

PACKAGES = ("lab", "servers", "loadgen", "contract")
MAX_LINES = 400

# Import edges known to close a cycle that another branch removes. Each entry
# is (importer, imported); remove it when that branch lands.
ALLOWED_CYCLE_EDGES: set[tuple[str, str]] = set()


def module_files() -> dict[str, Path]:
    """Every module of PACKAGES by dotted name (a package by its own name)."""
    found = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def _type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _import_nodes(node: ast.AST):
    """Import statements anywhere under ``node``, skipping ``if TYPE_CHECKING:`` bodies."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import | ast.ImportFrom):
            yield child
        elif isinstance(child, ast.If) and _type_checking(child.test):
            for other in child.orelse:
                yield from _import_nodes(ast.Module(body=[other], type_ignores=[]))
        else:
            yield from _import_nodes(child)


def imported_names(name: str, path: Path) -> set[str]:
    """The absolute names one module imports (any package, stdlib included):
    ``import a.b`` gives ``a.b``; ``from a import b`` gives ``a.b`` (which may
    be a module or a name defined in ``a``)."""
    is_package = path.name == "__init__.py"
    here = name.split(".") if is_package else name.split(".")[:-1]
    names = set()
    for node in _import_nodes(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
            continue
        base = node.module or ""
        if node.level:
            anchor = here[: len(here) - node.level + 1]
            base = ".".join(anchor + ([base] if base else []))
        names.update(f"{base}.{alias.name}" for alias in node.names)
    return names


def import_graph() -> dict[str, set[str]]:
    """module -> the modules of PACKAGES it imports."""
    files = module_files()
    graph = {}
    for name, path in files.items():
        targets = set()
        for imported in imported_names(name, path):
            # ``a.b.c`` is the module a.b.c, else a name defined in module a.b.
            while imported and imported not in files:
                imported = imported.rpartition(".")[0]
            if imported:
                targets.add(imported)
        targets.discard(name)
        graph[name] = targets
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """One cycle (as a path a -> ... -> a) per strongly connected component
    of more than one module (Tarjan's algorithm)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                components.append(set(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return [_path_through(graph, component) for component in components]


def _path_through(graph: dict[str, set[str]], component: set[str]) -> list[str]:
    """A shortest cycle through the component's first module, by breadth-first search."""
    start = min(component)
    parent: dict[str, str] = {}
    frontier = [start]
    while frontier:
        step = []
        for v in frontier:
            for w in sorted(graph[v] & component):
                if w == start:
                    return _unwind(parent, v, start)
                if w not in parent:
                    parent[w] = v
                    step.append(w)
        frontier = step
    raise AssertionError(f"no cycle through {component}")  # pragma: no cover


def _unwind(parent: dict[str, str], last: str, start: str) -> list[str]:
    path = [last]
    while path[-1] != start:
        path.append(parent[path[-1]])
    return [*reversed(path), start]


def without_allowed(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {v: {w for w in ws if (v, w) not in ALLOWED_CYCLE_EDGES} for v, ws in graph.items()}


def test_no_import_cycles():
    found = cycles(without_allowed(import_graph()))
    assert not found, "import cycles:\n" + "\n".join(" -> ".join(c) for c in found)


def test_allowed_cycle_edges_still_exist():
    """An allow-list entry whose import is gone is stale: remove it."""
    graph = import_graph()
    stale = sorted(edge for edge in ALLOWED_CYCLE_EDGES if edge[1] not in graph[edge[0]])
    assert not stale, f"remove from ALLOWED_CYCLE_EDGES: {stale}"


def test_no_module_over_400_lines():
    long = {str(path.relative_to(ROOT)): n for path in module_files().values()
            if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert not long, f"modules over {MAX_LINES} lines (split them by job): {long}"


def test_lab_never_imports_servers_or_loadgen():
    graph = import_graph()
    upward = sorted((v, w) for v, ws in graph.items() if v.split(".")[0] == "lab"
                    for w in ws if w.split(".")[0] in ("servers", "loadgen"))
    assert not upward, f"lab imports servers/loadgen: {upward}"


def test_host_is_below_the_backends_and_the_analysis():
    """lab/host/ holds the host's facts and arithmetic that doctor, the
    backends and the capacity plan read: it imports none of them."""
    above = ("lab.backends", "lab.run", "lab.results", "lab.analysis", "lab.report", "lab.cli")
    graph = import_graph()
    upward = sorted((v, w) for v, ws in graph.items() if v.startswith("lab.host")
                    for w in ws if w.startswith(above))
    assert not upward, f"lab/host imports upward: {upward}"


def test_contract_imports_only_the_standard_library():
    files = module_files()
    foreign = sorted(
        (name, imported) for name, path in files.items() if name.split(".")[0] == "contract"
        for imported in imported_names(name, path)
        if imported.split(".")[0] not in (*sys.stdlib_module_names, "__future__", "contract"))
    assert not foreign, f"contract imports beyond the standard library: {foreign}"


# -- the checker itself ------------------------------------------------------


def test_cycles_are_found_and_named():
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set()}
    assert cycles(graph) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


@pytest.mark.parametrize("source, expected", [
    ("import lab.run.loop\n", {"lab.run.loop"}),
    ("from lab.report import html as page\n", {"lab.report.html"}),
    ("def f():\n    from lab.analysis import holdout\n", {"lab.analysis.holdout"}),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from lab.run import loop\n",
     {"typing.TYPE_CHECKING"}),
    ("import typing\nif typing.TYPE_CHECKING:\n    import a\nelse:\n    import b\n",
     {"typing", "b"}),
    ("from . import sibling\nfrom .. import errors\n", {"lab.run.sibling", "lab.errors"}),
])
def test_imports_are_read_from_the_source(tmp_path, source, expected):
    path = tmp_path / "mod.py"
    path.write_text(source)
    assert imported_names("lab.run.mod", path) == expected


def test_the_graph_sees_module_and_deferred_imports():
    graph = import_graph()
    assert "lab.analysis.capacity" in graph["lab.report.html"]  # from lab.analysis import capacity
    assert "lab.report.html" in graph["lab.run.loop"]  # deferred, inside a function
    assert "servers.eventloop" in graph["servers.epoll_loop"]
