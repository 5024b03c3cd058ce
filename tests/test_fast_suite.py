"""The inner-loop suite (`pytest -m "not slow"`) keeps a test of every algorithm and entry point.

A static scan, without importing the test modules, of the source of each test's function and
decorators together with the module-level constants it reads: a test covers an entry point it
calls (`rlrun(`, `rlrun.train(`, `eval.export=`, ...), and an algorithm when it trains
(`train_run(`, `rlrun(`, ...) and names the algorithm (`algo=sac`, `"sac"`, or it is in
`tests/test_<name>.py`). Tests marked `slow` (on the function, in the
module's `pytestmark`, or a `pytest.param(..., marks=pytest.mark.slow)` case) do not count."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from rlrun.registry import algorithms

TESTS = Path(__file__).resolve().parent
PLUGIN_ALGORITHMS = {"awpg"}
"""Algorithms of `tests/plugin_pkg/`, registered only in the tests that install it."""
ENTRY_POINTS = {
    "rlrun": r"(?<![\w.-])rlrun\(|cli\.train\b|run_command\('rlrun'",
    "rlrun-eval": r"'rlrun-eval'|cli\.evaluate\b|rlrun_eval\(",
    "rlrun-report": r"'rlrun-report'|cli\.report\b",
    "rlrun.train": r"\brlrun\.train\(",
    "rlrun.load": r"\brlrun\.load\(",
    "export": r"eval\.export=",
}
"""Each entry point, and a pattern of the unparsed source of a test that runs it."""
TRAINS = r"\b(train_run|train_in_process|train_seeds|train_each_seed|learn|rlrun|run_command)\(|" \
         r"\b(cli|rlrun)\.train\(|\['rlrun', "
"""A pattern of the unparsed source of a test that trains (in this process or another; the last
alternative is a command line as a list of words)."""


def _is_slow_mark(node: ast.AST) -> bool:
    return any(isinstance(sub, ast.Attribute) and sub.attr == "slow" for sub in ast.walk(node))


class _DropSlowParams(ast.NodeTransformer):
    """Removes the `pytest.param(..., marks=...slow...)` cases of a decorator."""

    def visit_Call(self, node: ast.Call) -> ast.AST | None:
        if isinstance(node.func, ast.Attribute) and node.func.attr == "param" and any(
            keyword.arg == "marks" and _is_slow_mark(keyword.value) for keyword in node.keywords
        ):
            return ast.Constant(None)
        return self.generic_visit(node)


def fast_test_sources(source: str) -> dict[str, str]:
    """The unparsed source of each test function of a module that is not marked slow, with the
    module-level assignments it reads (by name, transitively) appended."""
    tree = ast.parse(source)
    constants: dict[str, ast.AST] = {}
    for node in tree.body:
        if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None:
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            for target in targets:
                if isinstance(target, ast.Name):
                    constants[target.id] = node.value
    if "pytestmark" in constants and _is_slow_mark(constants["pytestmark"]):
        return {}
    sources = {}
    for node in tree.body:
        if not isinstance(node, ast.FunctionDef) or not node.name.startswith("test"):
            continue
        if any(_is_slow_mark(decorator) and not isinstance(decorator, ast.Call)
               or isinstance(decorator, ast.Call) and _is_slow_mark(decorator.func)
               for decorator in node.decorator_list):
            continue
        node = _DropSlowParams().visit(node)
        parts, seen, names = [ast.unparse(node)], set(), [n.id for n in ast.walk(node)
                                                           if isinstance(n, ast.Name)]
        while names:
            name = names.pop()
            if name in constants and name not in seen:
                seen.add(name)
                parts.append(ast.unparse(constants[name]))
                names += [n.id for n in ast.walk(constants[name]) if isinstance(n, ast.Name)]
        sources[node.name] = "\n".join(parts)
    return sources


def covered(modules: dict[str, str], algorithm_names: set[str]) -> dict[str, set[str]]:
    """The fast tests (`module::test`) that cover each algorithm and each entry point, given the
    modules' sources by file stem."""
    found: dict[str, set[str]] = {name: set() for name in [*algorithm_names, *ENTRY_POINTS]}
    for stem, source in modules.items():
        for test, text in fast_test_sources(source).items():
            trains = re.search(TRAINS, text)
            for name in algorithm_names:
                if trains and (stem == f"test_{name}" or re.search(rf"algo={name}\b|'{name}'", text)):
                    found[name].add(f"{stem}::{test}")
            for name, pattern in ENTRY_POINTS.items():
                if re.search(pattern, text):
                    found[name].add(f"{stem}::{test}")
    return found


def test_every_algorithm_and_entry_point_has_a_test_outside_slow():
    modules = {path.stem: path.read_text() for path in sorted(TESTS.glob("test_*.py"))
               if path.stem != Path(__file__).stem}  # whose planted module names every case
    found = covered(modules, set(algorithms()) | PLUGIN_ALGORITHMS)
    missing = sorted(name for name, tests in found.items() if not tests)
    assert not missing, f"no test outside `slow` runs {missing}: keep one fast test of each"


def test_a_test_marked_slow_does_not_count():
    planted = '''
import pytest

ALGOS = ["a2c", "sac"]
SLOW_ONLY = ["algo=td3"]


@pytest.mark.parametrize("algo", ALGOS)
def test_smoke(algo):
    rlrun(f"algo={algo}")


@pytest.mark.slow
def test_learns():
    rlrun(*SLOW_ONLY)


@pytest.mark.parametrize("algo", ["dqn", pytest.param("ddpg", marks=pytest.mark.slow)])
def test_some_cases_are_slow(algo):
    train_run([f"algo={algo}"])
    rlrun_eval(algo)


def test_a_refusal_names_but_trains_nothing():
    assert "ppo" in compose(["algo=ppo"])
'''
    found = covered({"test_planted": planted, "test_ddpg": "def helper(): pass\n"},
                    {"a2c", "sac", "td3", "dqn", "ddpg", "ppo"})
    assert found["a2c"] == found["sac"] == {"test_planted::test_smoke"}
    assert found["dqn"] == {"test_planted::test_some_cases_are_slow"}
    assert found["td3"] == found["ddpg"] == set()  # slow only; test_ddpg.py holds no test
    assert found["ppo"] == set()  # named, not trained
    assert found["rlrun"] == {"test_planted::test_smoke"}
    assert found["rlrun-eval"] == {"test_planted::test_some_cases_are_slow"}
    assert found["rlrun.train"] == set()
    module_slow = "import pytest\npytestmark = pytest.mark.slow\n\ndef test_x():\n    rlrun('algo=sac')\n"
    assert covered({"test_sac": module_slow}, {"sac"})["sac"] == set()
