"""Imports go one way: down the layers of `LAYERS`, and never in a circle.

Every module under `rlrun/` is read with `ast` (nothing is imported). An import counts wherever it
is written: at the top of a module, inside a function or method, under `if TYPE_CHECKING:` (a type
named in an annotation is still knowledge of the layer that defines it), and as a module path given
to `importlib.import_module`, `import_module` or `__import__` (a literal, the constant head of an
f-string, which stands for every module below it, or, for any other argument, every rlrun module
named by a string in that module). Relative imports are resolved against the importer's package.

Circles are checked twice. Among the imports that run when a module is first imported (module
level, not under `TYPE_CHECKING`, parent packages included) there must be none: such a circle
breaks as soon as someone imports the other module first. Function-local and `import_module`
imports join a second check: deferring an import is the way to keep a heavy one off a cheap path
(`rlrun --help` loads no torch), not a way to hide a circle, so two modules that need each other
fail it too. `TYPE_CHECKING` imports join no circle: they never run.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = "rlrun"
PACKAGE_DIR = Path(__file__).resolve().parent.parent / ROOT

LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Bottom to top: a module may import its own layer or a lower one. An entry names a module and
    # every module below it (the longest entry wins), except the root package "rlrun", which names
    # only rlrun/__init__.py.
    ("config", ("rlrun.config", "rlrun.extras")),
    ("ops", ("rlrun.ops",)),
    ("networks, envs", ("rlrun.networks", "rlrun.envs")),
    ("data", ("rlrun.data",)),
    ("training", ("rlrun.training",)),
    ("run, tracking", ("rlrun.run", "rlrun.tracking", "rlrun.callbacks")),
    ("algos, lm", ("rlrun.algos", "rlrun.lm")),
    ("registry", ("rlrun.registry",)),
    ("export, search, results", ("rlrun.export", "rlrun.search", "rlrun.results")),
    ("cli, api, plugin", ("rlrun", "rlrun.cli", "rlrun.api", "rlrun.api_policy", "rlrun.plugin")),
)

SELF_CONTAINED = {"ops"}
"""Layers that import no rlrun module outside themselves (`ops/` is pure maths over tensors: it
takes no config objects, so it imports no `rlrun.config` either, though config is lower)."""

DYNAMIC_IMPORTERS = {"import_module", "__import__"}
"""Names (bare or as an attribute, `importlib.import_module`) of calls that import a module path."""


@dataclass(frozen=True)
class Edge:
    importer: str
    imported: str
    line: int
    kind: str
    """"module" (runs when the importer is imported), "function", "type_checking" or "dynamic"."""


def module_sources(package_dir: Path = PACKAGE_DIR) -> dict[str, tuple[str, bool]]:
    """Every module under `package_dir`: dotted name -> (source, whether it is a package)."""
    sources = {}
    for path in sorted(package_dir.rglob("*.py")):
        parts = list(path.relative_to(package_dir.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        sources[".".join(parts)] = (path.read_text(encoding="utf-8"), is_package)
    return sources


def layer_of(module: str) -> int | None:
    """The index in `LAYERS` of the longest entry naming `module`; None when no entry does."""
    best, best_length = None, -1
    for index, (_, entries) in enumerate(LAYERS):
        for entry in entries:
            named = module == entry or (entry != ROOT and module.startswith(entry + "."))
            if named and len(entry) > best_length:
                best, best_length = index, len(entry)
    return best


def _known(name: str, modules: set[str]) -> str:
    """The longest known module that `name` is or lies in (`rlrun.x.Thing` -> `rlrun.x`)."""
    while name not in modules and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


class _Walker(ast.NodeVisitor):
    """Collects the rlrun imports of one module, each with the context it is written in."""

    def __init__(self, module: str, is_package: bool, tree: ast.Module, modules: set[str]):
        self.module, self.modules, self.edges = module, modules, []
        self.package = module if is_package else module.rpartition(".")[0]
        self.depth, self.type_checking = 0, 0
        self.named = sorted({node.value for node in ast.walk(tree) if isinstance(node, ast.Constant)
                             and isinstance(node.value, str) and node.value in modules - {ROOT}})
        self.visit(tree)

    def _kind(self) -> str:
        return "type_checking" if self.type_checking else "function" if self.depth else "module"

    def _add(self, name: str, line: int, kind: str | None = None) -> None:
        if name == ROOT or name.startswith(ROOT + "."):
            imported = _known(name, self.modules)
            self.edges.append(Edge(self.module, imported, line, kind or self._kind()))

    def _absolute(self, level: int, name: str | None) -> str:
        if not level:
            return name or ""
        base = self.package.split(".")
        base = base[: len(base) - (level - 1)]
        return ".".join([*base, name] if name else base)

    def visit_FunctionDef(self, node: ast.AST) -> None:
        self.depth += 1
        self.generic_visit(node)
        self.depth -= 1

    visit_AsyncFunctionDef = visit_Lambda = visit_FunctionDef

    def visit_If(self, node: ast.If) -> None:
        if not _is_type_checking(node.test):
            self.generic_visit(node)
            return
        self.visit(node.test)
        self.type_checking += 1
        for child in node.body:
            self.visit(child)
        self.type_checking -= 1
        for child in node.orelse:
            self.visit(child)

    def visit_Import(self, node: ast.Import) -> None:
        for alias in node.names:
            self._add(alias.name, node.lineno)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        base = self._absolute(node.level, node.module)
        for alias in node.names:
            submodule = f"{base}.{alias.name}"
            self._add(submodule if submodule in self.modules else base, node.lineno)

    def visit_Call(self, node: ast.Call) -> None:
        func = node.func
        name = getattr(func, "id", None) or getattr(func, "attr", "")
        if name in DYNAMIC_IMPORTERS and node.args:
            for target in self._dynamic_targets(node.args[0]):
                self._add(target, node.lineno, "dynamic")
        self.generic_visit(node)

    def _dynamic_targets(self, argument: ast.expr) -> list[str]:
        if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
            level = len(argument.value) - len(argument.value.lstrip("."))
            return [self._absolute(level, argument.value[level:] or None)]
        if isinstance(argument, ast.JoinedStr):  # f"rlrun.algos.{name}": any module below
            head = argument.values[0] if argument.values else None
            package = head.value.rstrip(".") if isinstance(head, ast.Constant) else ""
            return [m for m in self.modules if m == package or m.startswith(package + ".")]
        return self.named


def import_edges(sources: Mapping[str, tuple[str, bool]]) -> list[Edge]:
    """Every rlrun import written in `sources` (dotted name -> (source, is_package))."""
    modules = set(sources)
    edges = []
    for module, (source, is_package) in sorted(sources.items()):
        tree = ast.parse(source, filename=module)
        edges += _Walker(module, is_package, tree, modules).edges
    return [edge for edge in edges if edge.imported != edge.importer]


def unknown_modules(sources: Iterable[str]) -> list[str]:
    return sorted(module for module in sources if layer_of(module) is None)


def layer_violations(edges: Iterable[Edge]) -> dict[tuple[str, str], list[Edge]]:
    """(importer, imported) -> the imports that go up a layer or leave a self-contained one."""
    found: dict[tuple[str, str], list[Edge]] = {}
    for edge in edges:
        low, high = layer_of(edge.imported), layer_of(edge.importer)
        if low is None or high is None:
            continue  # reported by the unknown-module check
        leaves = LAYERS[high][0] in SELF_CONTAINED and low != high
        if low > high or leaves:
            found.setdefault((edge.importer, edge.imported), []).append(edge)
    return found


AT_IMPORT = frozenset({"module"})
"""The kinds of import that run when their module is first imported."""
WHEN_CALLED = frozenset({"module", "function", "dynamic"})
"""The kinds of import that run at import time or when a function is called."""


def import_cycles(edges: Iterable[Edge], kinds: frozenset[str] = AT_IMPORT) -> list[list[str]]:
    """The circles among the imports of these kinds (each a list of modules, the first repeated at
    the end), one per strongly connected component; importing `a.b.c` runs `a.b` too, except where
    `a.b` is a package above the importer (it always runs before its own modules)."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        if edge.kind not in kinds:
            continue
        parts = edge.imported.split(".")
        for end in range(2, len(parts) + 1):  # the parent packages run too (the root is lazy)
            target = ".".join(parts[:end])
            if target != edge.importer and not edge.importer.startswith(f"{target}."):
                graph.setdefault(edge.importer, set()).add(target)
    reach = {node: _reachable(graph, node) for node in graph}
    components = {frozenset(other for other in reach[node] if node in reach.get(other, ()))
                  for node in graph if node in reach[node]}
    return sorted(_circle_in(component, graph) for component in components)


def _reachable(graph: Mapping[str, set[str]], start: str) -> set[str]:
    seen: set[str] = set()
    todo = [start]
    while todo:
        for successor in graph.get(todo.pop(), ()):
            if successor not in seen:
                seen.add(successor)
                todo.append(successor)
    return seen


def _circle_in(component: frozenset[str], graph: Mapping[str, set[str]]) -> list[str]:
    """One shortest circle through the component's first module (breadth-first)."""
    start = min(component)
    paths = {start: [start]}
    queue = [start]
    while queue:
        node = queue.pop(0)
        for successor in sorted(graph.get(node, set()) & component):
            if successor == start:
                return [*paths[node], start]
            if successor not in paths:
                paths[successor] = [*paths[node], successor]
                queue.append(successor)
    raise AssertionError(f"no circle through {start}")


def _layer_name(module: str) -> str:
    layer = layer_of(module)
    return "?" if layer is None else LAYERS[layer][0]


def describe(violations: Mapping[tuple[str, str], list[Edge]]) -> str:
    lines = []
    for (importer, imported), edges in sorted(violations.items()):
        where = ", ".join(f"line {edge.line} ({edge.kind})" for edge in edges)
        lines.append(f"  {importer} [{_layer_name(importer)}] -> "
                     f"{imported} [{_layer_name(imported)}]: {where}")
    return "\n".join(lines)


@pytest.fixture(scope="module")
def sources():
    return module_sources()


@pytest.fixture(scope="module")
def edges(sources):
    return import_edges(sources)


def test_every_module_has_a_layer(sources):
    unknown = unknown_modules(sources)
    assert not unknown, ("add these modules (or a package above them) to LAYERS in "
                         f"tests/test_layers.py: {', '.join(unknown)}")


def test_imports_go_down_the_layers(edges):
    new = layer_violations(edges)
    assert not new, (f"{len(new)} import(s) break the layers of tests/test_layers.py (a module may "
                     f"import only its own layer or a lower one; ops only ops):\n{describe(new)}")


def _describe_circles(circles: list[list[str]]) -> str:
    return "\n".join("  " + " -> ".join(circle) for circle in circles)


def test_no_import_circles(edges):
    circles = import_cycles(edges)
    assert not circles, f"import circles (module-level imports):\n{_describe_circles(circles)}"


def test_no_circles_through_deferred_imports(edges):
    circles = import_cycles(edges, WHEN_CALLED)
    assert not circles, ("import circles closed by a function-local or dynamic import (move what "
                         f"both modules need into a lower module):\n{_describe_circles(circles)}")


def _planted(sources, extra: dict[str, str]) -> dict[str, tuple[str, bool]]:
    return {**sources, **{name: (text, False) for name, text in extra.items()}}


@pytest.mark.parametrize(("source", "kind"), [
    ("from rlrun.run.facade import Run\n", "module"),
    ("def f():\n    from ..run import Run\n", "function"),
    ("class A:\n    def f(self):\n        import rlrun.registry.x\n", "function"),
    ("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from rlrun import run\n",
     "type_checking"),
    ("import importlib\ndef f():\n    importlib.import_module('rlrun.run.facade')\n", "dynamic"),
    ("def f(name):\n    return __import__(f'rlrun.algos.{name}')\n", "dynamic"),
    ("from rlrun import config\n", "module"),  # ops is self-contained: not even config
])
def test_a_planted_violation_fails(sources, source, kind):
    planted = _planted(sources, {"rlrun.ops.planted": source})
    found = {pair: edges for pair, edges in layer_violations(import_edges(planted)).items()
             if pair[0] == "rlrun.ops.planted"}
    assert found, f"not caught:\n{source}"
    assert {edge.kind for edges in found.values() for edge in edges} == {kind}
    assert "rlrun.ops.planted" in describe(found)


def test_a_planted_circle_fails(sources):
    planted = _planted(sources, {
        "rlrun.data.planted_a": "from rlrun.data.planted_b import B\n",
        "rlrun.data.planted_b": "from . import planted_c\n",
        "rlrun.data.planted_c": ("import rlrun.data.planted_a\n"
                                 "def f():\n    import rlrun.registry\n"),
    })
    circles = [circle for circle in import_cycles(import_edges(planted))
               if "rlrun.data.planted_a" in circle]
    assert circles == [["rlrun.data.planted_a", "rlrun.data.planted_b", "rlrun.data.planted_c",
                        "rlrun.data.planted_a"]]


def test_a_planted_deferred_circle_fails_only_the_second_check(sources):
    planted = _planted(sources, {
        "rlrun.data.planted_a": "import rlrun.data.planted_b\n",
        "rlrun.data.planted_b": "def f():\n    import rlrun.data.planted_a\n",
        "rlrun.data.planted_c": "import rlrun.data.planted_d\n",
        "rlrun.data.planted_d": "from typing import TYPE_CHECKING\n"
                                "if TYPE_CHECKING:\n    from rlrun.data import planted_c\n",
    })
    edges = import_edges(planted)

    def planted_circles(kinds):
        return [circle for circle in import_cycles(edges, kinds) if "planted" in circle[0]]

    assert planted_circles(AT_IMPORT) == []
    assert planted_circles(WHEN_CALLED) == [
        ["rlrun.data.planted_a", "rlrun.data.planted_b", "rlrun.data.planted_a"]]


def test_an_unknown_module_is_named():
    assert unknown_modules(["rlrun.ops.td", "rlrun.newthing", "rlrun.runner"]) == [
        "rlrun.newthing", "rlrun.runner"]
