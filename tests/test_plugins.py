"""Algorithms from other packages: `tests/plugin_pkg` (algo=awpg, its own config, loss and
preset) installed with pip into a temporary dir that only a subprocess sees, and packages whose
entry points are broken.

Each subprocess runs this file as a script: it runs several `rlrun` and `rlrun-eval` command
lines in one interpreter (`drive`) and writes their exit codes and output as JSON, so that the
commands share one start-up of torch.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import assert_same, read_metrics

PLUGIN_SOURCE = Path(__file__).parent / "plugin_pkg"
REPO = Path(__file__).resolve().parents[1]
TINY = ["env=CartPole-v1", "deterministic=true", "torch_threads=1", "logger.console=false",
        "eval.episodes=2", "eval.every_steps=512", "checkpoint.every_steps=512"]
DETERMINISTIC = ("train/", "rollout/", "eval/")
"""The metric namespaces that `deterministic=true` repeats bit for bit (time/ is wall clock)."""


def drive(commands: list[list[str]], output: str) -> None:
    """Run each command line (`rlrun ...` or `rlrun-eval ...`) through its entry point in this
    process; write [{code, stdout, stderr}] to `output`."""
    from rlrun.cli import train_command as cli

    results = []
    for name, *args in commands:
        sys.argv = [name, *args]
        out, err, code = io.StringIO(), io.StringIO(), 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                {"rlrun": cli.train, "rlrun-eval": cli.evaluate}[name]()
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else 1
        results.append({"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()})
    Path(output).write_text(json.dumps(results))


def run_commands(commands: list[list[str]], site: Path, tmp_path: Path) -> list[dict]:
    """`drive` the commands in a subprocess whose only extra import path is `site`."""
    output = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(site)]),
           "WANDB_MODE": "offline"}
    done = subprocess.run(
        [sys.executable, __file__, json.dumps(commands), str(output)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(output.read_text())


def deterministic_metrics(run_dir: Path) -> list[dict]:
    lines = read_metrics(run_dir)
    return [{"step": line["step"], **{k: v for k, v in line.items() if k.startswith(DETERMINISTIC)}}
            for line in lines]


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory) -> Path:
    """tests/plugin_pkg installed (offline, without its dependencies) into a temporary dir."""
    tmp = tmp_path_factory.mktemp("plugin")
    source = shutil.copytree(PLUGIN_SOURCE, tmp / "source")  # pip builds in the source tree
    site = tmp / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--quiet", "--target", str(site), str(source)],
        check=True, capture_output=True, timeout=120,
    )
    return site


def test_an_installed_package_trains_resumes_evaluates_and_exports_its_algorithm(
    plugin_site, tmp_path
):
    import importlib.util

    from rlrun.run.checkpoint_files import load_checkpoint

    straight, halves = tmp_path / "straight", tmp_path / "halves"
    export = "onnx" if importlib.util.find_spec("onnx") is not None else "torchscript"
    help_, refused, trained, first_half, resumed, evaluated = run_commands([
        ["rlrun", "--help"],
        ["rlrun", "algo=awpg", "algo.temperature=0"],
        ["rlrun", "algo=awpg", *TINY, "total_timesteps=1024", f"hydra.run.dir={straight}"],
        ["rlrun", "algo=awpg", *TINY, "total_timesteps=512", f"hydra.run.dir={halves}"],
        ["rlrun", f"resume={halves}", "total_timesteps=1024"],
        ["rlrun-eval", str(straight), "eval.episodes=2", f"eval.export={export}"],
    ], plugin_site, tmp_path)

    algo_line = next(line for line in help_["stdout"].splitlines() if "algorithm:" in line)
    assert "awpg" in algo_line.split() and "ppo" in algo_line.split()
    assert refused["code"] == 2
    assert refused["stderr"].strip().splitlines() == [
        "rlrun: algo.temperature=0.0 must be > 0; e.g. 1.0"
    ]
    for result in (trained, first_half, resumed, evaluated):
        assert result["code"] == 0, result["stderr"]

    config = yaml.safe_load((straight / ".hydra" / "config.yaml").read_text())
    assert config["algo"]["temperature"] == 0.5 and config["env"]["num_envs"] == 4  # its preset
    assert config["algo"]["max_weight"] == 20.0  # its dataclass default
    a = load_checkpoint(straight / "checkpoints" / "last.pt")
    b = load_checkpoint(halves / "checkpoints" / "last.pt")
    assert a["algo"] == "awpg" and a["global_step"] == b["global_step"] == 1024
    assert_same(a["modules"], b["modules"])
    assert_same(a["rng"], b["rng"])
    assert deterministic_metrics(straight) == deterministic_metrics(halves)
    suffix = "onnx" if export == "onnx" else "pt"
    assert (straight / "checkpoints" / f"last.policy.{suffix}").is_file()
    assert json.loads((straight / "checkpoints" / "last.eval.json").read_text())["episodes"] == 2
    # without the package, resume= and rlrun-eval of its run say to install it, in one line
    (gone_resume, gone_eval) = run_commands([["rlrun", f"resume={straight}", "total_timesteps=2048"],
                                             ["rlrun-eval", str(straight)]], tmp_path / "empty", tmp_path)
    for gone in (gone_resume, gone_eval):
        assert gone["code"] == 2 and len(gone["stderr"].strip().splitlines()) == 1, gone["stderr"]
        assert "algo 'awpg', which this rlrun does not have" in gone["stderr"]
        assert "install that package" in gone["stderr"]


def write_broken_package(site: Path) -> None:
    """A distribution `rlrun-broken` (installed by hand) with three entry points that cannot
    register: a module that fails to import, a name that is not there, rlrun's own `ppo`."""
    package = site / "rlrun_broken"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "failing.py").write_text("import a_module_that_is_not_installed\n")
    (package / "clash.py").write_text("from rlrun.algos.ppo import SPEC\n")
    info = site / "rlrun_broken-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: rlrun-broken\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text(
        "[rlrun.algorithms]\n"
        "failing = rlrun_broken.failing:SPEC\n"
        "nothing = rlrun_broken:SPEC\n"
        "ppo = rlrun_broken.clash\n"
    )


@pytest.mark.slow
def test_broken_packages_get_one_line_each_and_rlrun_still_trains(tmp_path):
    site = tmp_path / "site"
    write_broken_package(site)
    picked, trained = run_commands([  # the broken one first: the process loads the registry
        ["rlrun", "algo=failing"],
        ["rlrun", "algo=ppo", *TINY, "total_timesteps=256", f"hydra.run.dir={tmp_path / 'run'}"],
    ], site, tmp_path)

    assert trained["code"] == 0, trained["stderr"]
    lines = trained["stderr"].strip().splitlines()
    assert len(lines) == 3, lines
    failing, nothing, clash = lines
    for line in lines:
        assert line.startswith("rlrun: algorithm '") and "of package rlrun-broken" in line
    assert "ModuleNotFoundError: No module named 'a_module_that_is_not_installed'" in failing
    assert "rlrun_broken:SPEC" in nothing
    assert "taken by rlrun's own algorithm; rename it" in clash
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
    # picking the broken one: its line once, as the refusal, exit 2
    assert picked["code"] == 2 and picked["stderr"].strip().splitlines() == [failing]



def test_the_plugin_interface_resolves_and_describes_every_name():
    import ast
    import inspect

    import rlrun.plugin

    for name in rlrun.plugin.__all__:
        assert getattr(rlrun.plugin, name) is not None, name
    source = inspect.getsource(rlrun.plugin)
    listed = next(node for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Assign)
                  and getattr(node.targets[0], "id", None) == "__all__")
    lines = source.splitlines()
    for element in listed.value.elts:
        line = lines[element.lineno - 1]
        assert len(line.partition("  # ")[2]) > 10, f"{element.value} has no one-line description"
    imported = {alias.asname or alias.name for node in ast.walk(ast.parse(source))
                if isinstance(node, ast.ImportFrom) and node.module != "__future__"
                for alias in node.names}
    assert imported == set(rlrun.plugin.__all__)

if __name__ == "__main__":
    drive(json.loads(sys.argv[1]), sys.argv[2])
