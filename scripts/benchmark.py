"""Side-by-side speed: Stable-Baselines3, then rlrun, then the env alone, at identical settings.

Whole-process wall time (interpreter start, imports, training, rlrun's final evaluation and
checkpoints included) on the same machine in one invocation; prints a markdown table with
steps/s and ratios. Needs the `bench` extra (stable-baselines3).

    python scripts/benchmark.py                       # all workloads
    python scripts/benchmark.py ppo_hopper --repeats 3
    python scripts/benchmark.py --device cuda          # both tools on the GPU
    python scripts/benchmark.py sac_hopper --also torch_threads=auto   # a second rlrun column

Before and after a change: `--baseline REF_OR_PATH` times rlrun only, from a baseline tree (a git
ref, checked out in a temporary `git worktree` that is removed afterwards, or the path of a
checkout) and from this tree, each with its tree first on PYTHONPATH and one torch thread. Within
each repeat every workload runs on both trees in turn, the order alternating between repeats, so
that the machine's drift falls on both. Per workload it prints the median steps/s of each tree
(whole process) and the ratio current/baseline of whole-process steps/s and of the training
loop's last `time/sps`, each as the median over repeats with the lowest and highest (above 1 is
faster than the baseline):

    python scripts/benchmark.py --baseline main ppo_cartpole dqn_cartpole --repeats 5
    python scripts/benchmark.py --baseline ../rlrun-old --steps 20000 ppo_cartpole
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RLRUN = str(Path(PYTHON).parent / "rlrun")
GIT = ("git", "-C", str(ROOT))


@dataclass(frozen=True)
class Workload:
    name: str
    steps: int
    env_id: str
    num_envs: int
    rlrun_args: tuple[str, ...]
    peer: str = "sb3_peer.py"
    """Script in scripts/ that runs the SB3 side: `peer WORKLOAD STEPS DEVICE`."""
    peer_workload: str | None = None
    """The peer's WORKLOAD when it differs from `name` (SB3 has no EnvPool backend)."""


WORKLOADS = [
    Workload("ppo_hopper", 20_480, "Hopper-v4", 1, ("algo=ppo", "env=Hopper-v4")),
    Workload("ppo_cartpole", 100_000, "CartPole-v1", 4, ("algo=ppo", "env=CartPole-v1")),
    # Off-policy: 1,000 random steps, then one update per env step (the update phase dominates).
    Workload("sac_hopper", 4_000, "Hopper-v4", 1, ("algo=sac", "env=Hopper-v4", "algo.learning_starts=1000"),
             "sb3_offpolicy_peer.py"),
    Workload("td3_hopper", 4_000, "Hopper-v4", 1, ("algo=td3", "env=Hopper-v4", "algo.learning_starts=1000"),
             "sb3_offpolicy_peer.py"),
    Workload("dqn_cartpole", 50_000, "CartPole-v1", 1, ("algo=dqn", "env=CartPole-v1"), "sb3_offpolicy_peer.py"),
    # rlrun on EnvPool's C++ envs against SB3 and the env-only loop on Gymnasium's (needs `.[envpool]`).
    Workload("ppo_hopper_envpool", 20_480, "Hopper-v4", 1, ("algo=ppo", "env=Hopper-v4", "env.backend=envpool"),
             peer_workload="ppo_hopper"),
    Workload("ppo_cartpole_envpool", 100_000, "CartPole-v1", 4,
             ("algo=ppo", "env=CartPole-v1", "env.backend=envpool"), peer_workload="ppo_cartpole"),
]

ENV_ONLY = """
import sys, gymnasium as gym, numpy as np
env_id, num_envs, steps = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
envs = gym.vector.SyncVectorEnv([lambda: gym.make(env_id)] * num_envs,
                                autoreset_mode=gym.vector.AutoresetMode.SAME_STEP)
envs.reset(seed=0)
envs.action_space.seed(0)
for _ in range(steps // num_envs):
    envs.step(envs.action_space.sample())
"""


def timed(command: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, check=False, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def rlrun_command(workload: Workload, run_dir: Path, device: str, extra: list[str]) -> list[str]:
    """The `rlrun` command of a workload in a fresh `run_dir` (not a resume of an earlier one)."""
    shutil.rmtree(run_dir, ignore_errors=True)
    return [RLRUN, *workload.rlrun_args, f"total_timesteps={workload.steps}",
            f"hydra.run.dir={run_dir}", "eval.every_steps=0", f"device={device}", *extra]


def measure(workload: Workload, repeats: int, out_dir: Path, device: str,
            variants: dict[str, list[str]]) -> dict[str, float]:
    """Median seconds of SB3, of rlrun with each variant's extra overrides, and of the env alone."""
    times: dict[str, list[float]] = {"sb3": [], **{name: [] for name in variants}, "env": []}
    for repeat in range(repeats):
        times["sb3"].append(timed([PYTHON, str(ROOT / "scripts" / workload.peer),
                                   workload.peer_workload or workload.name, str(workload.steps), device], ROOT))
        for index, (name, extra) in enumerate(variants.items()):
            run_dir = out_dir / f"{workload.name}_{repeat}_{index}"
            times[name].append(timed(rlrun_command(workload, run_dir, device, extra), ROOT))
        times["env"].append(timed([PYTHON, "-c", ENV_ONLY, workload.env_id, str(workload.num_envs),
                                   str(workload.steps)], ROOT))
    return {name: statistics.median(values) for name, values in times.items()}


def runnable(workload: Workload) -> bool:
    """False, saying so, for an EnvPool workload without EnvPool installed."""
    if "env.backend=envpool" in workload.rlrun_args and importlib.util.find_spec("envpool") is None:
        print(f"skipping {workload.name}: EnvPool is not installed (pip install -e '.[envpool]')",
              flush=True)
        return False
    return True


def resolve_baseline(ref_or_path: str) -> Path | str:
    """The checkout directory `ref_or_path` names, else the commit of that git ref.

    Raises:
        ValueError: it is neither (the message names the fix).
    """
    path = Path(ref_or_path).expanduser()
    if path.is_dir():
        if not (path / "rlrun" / "__init__.py").is_file():
            raise ValueError(f"--baseline {ref_or_path}: no rlrun/__init__.py there; give the root "
                             "of an rlrun checkout or a git ref (e.g. --baseline main)")
        return path.resolve()
    commit = subprocess.run([*GIT, "rev-parse", "--verify", "--quiet", f"{ref_or_path}^{{commit}}"],
                            check=False, capture_output=True, text=True).stdout.strip()
    if not commit:
        raise ValueError(f"--baseline {ref_or_path}: neither a directory nor a git ref of {ROOT}; "
                         "give a branch, tag or commit (e.g. --baseline main) or a checkout's path")
    return commit


@contextlib.contextmanager
def baseline_tree(baseline: Path | str) -> Iterator[Path]:
    """A checkout's directory, or a commit checked out in a temporary worktree (removed after)."""
    if isinstance(baseline, Path):
        yield baseline
        return
    with tempfile.TemporaryDirectory(prefix="rlrun-baseline-") as parent:
        tree = Path(parent) / "tree"
        subprocess.run([*GIT, "worktree", "add", "--quiet", "--detach", str(tree), baseline],
                       check=True)
        try:
            yield tree
        finally:
            subprocess.run([*GIT, "worktree", "remove", "--force", str(tree)], check=False)


def tree_command(tree: Path, command: list[str]) -> list[str]:
    """`command` (an `rlrun ...` line) run through `tree`'s own entry point of `rlrun` (its
    pyproject's `[project.scripts]`), which may differ from the installed console script's."""
    import tomllib

    target = tomllib.loads((tree / "pyproject.toml").read_text())["project"]["scripts"]["rlrun"]
    module, function = target.split(":")
    launcher = (f"import sys; sys.argv[0] = 'rlrun'; from {module} import {function}; "
                f"sys.exit({function}())")
    return [PYTHON, "-P", "-c", launcher, *command[1:]]  # -P: the cwd is not on sys.path


def tree_env(tree: Path) -> dict[str, str]:
    """The environment that runs `tree`'s rlrun with one thread for torch and the BLAS libraries."""
    return {**os.environ, "PYTHONPATH": str(tree), "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def last_sps(run_dir: Path) -> float:
    """The last `time/sps` in a run's metrics.jsonl (the training loop's env steps per second)."""
    sps = math.nan
    for line in (run_dir / "metrics.jsonl").read_text().splitlines():
        sps = json.loads(line).get("time/sps", sps)
    return sps


def spread(values: list[float]) -> str:
    """`median [lowest-highest]`."""
    return f"{statistics.median(values):.3f} [{min(values):.3f}-{max(values):.3f}]"


def compare_with_baseline(workloads: list[Workload], baseline: Path, repeats: int, out_dir: Path,
                          device: str) -> list[str]:
    """Markdown rows: each workload on the baseline tree and this one, interleaved per repeat."""
    trees = {"baseline": baseline, "current": ROOT}
    header = ["workload", "steps", "baseline steps/s", "current steps/s",
              "current/baseline steps/s [min-max]", "current/baseline loop sps [min-max]"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    print(f"baseline: {baseline}\ncurrent: {ROOT}\n{rows[0]}\n{rows[1]}", flush=True)
    for workload in workloads:
        seconds: dict[str, list[float]] = {side: [] for side in trees}
        sps: dict[str, list[float]] = {side: [] for side in trees}
        for repeat in range(repeats):
            for side in (trees if repeat % 2 == 0 else reversed(list(trees))):
                run_dir = out_dir / f"{workload.name}_{side}_{repeat}"
                command = rlrun_command(workload, run_dir, device, ["torch_threads=1"])
                seconds[side].append(timed(tree_command(trees[side], command), ROOT,
                                           tree_env(trees[side])))
                sps[side].append(last_sps(run_dir))
        speedups = [b / c for b, c in zip(seconds["baseline"], seconds["current"], strict=True)]
        loop = [c / b for b, c in zip(sps["baseline"], sps["current"], strict=True)]
        cells = [workload.name, f"{workload.steps:,}",
                 *(f"{workload.steps / statistics.median(seconds[side]):,.0f}" for side in trees),
                 spread(speedups), spread(loop)]
        rows.append("| " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workloads", nargs="*", default=[w.name for w in WORKLOADS])
    parser.add_argument("--repeats", type=int, default=1, help="runs per tool; the median time is reported")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "benchmark")
    parser.add_argument("--device", default="cpu", help="where both tools put their networks: cpu or cuda")
    parser.add_argument("--also", nargs="+", default=None, metavar="KEY=VALUE",
                        help="also time rlrun with these overrides (e.g. torch_threads=auto), in extra columns")
    parser.add_argument("--baseline", metavar="REF_OR_PATH",
                        help="time rlrun from this git ref or checkout against this tree")
    parser.add_argument("--steps", type=int, default=None,
                        help="env steps of every workload instead of its own (off-policy "
                             "workloads start updating after 1,000)")
    args = parser.parse_args()
    unknown = sorted(set(args.workloads) - {w.name for w in WORKLOADS})
    if unknown:
        parser.error(f"unknown workload {', '.join(unknown)}; "
                     f"choose from {', '.join(w.name for w in WORKLOADS)}")
    selected = [w if args.steps is None else replace(w, steps=args.steps)
                for w in WORKLOADS if w.name in args.workloads and runnable(w)]
    if args.baseline:
        try:
            resolved = resolve_baseline(args.baseline)
        except ValueError as error:
            parser.error(str(error))
        with baseline_tree(resolved) as baseline:
            rows = compare_with_baseline(selected, baseline, args.repeats, args.out, args.device)
        print("\n".join(rows))
        return
    variants = {"rlrun": []}
    if args.also:
        variants[f"rlrun {' '.join(args.also)}"] = args.also
    header = ["workload", "steps", "SB3 steps/s"]
    for name in variants:
        header += [f"{name} steps/s", f"{name} / SB3"]
    header += ["env-only steps/s", "rlrun time / env time"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for workload in selected:
        t = measure(workload, args.repeats, args.out, args.device, variants)
        cells = [workload.name, f"{workload.steps:,}", f"{workload.steps / t['sb3']:,.0f}"]
        for name in variants:
            cells += [f"{workload.steps / t[name]:,.0f}", f"{t['sb3'] / t[name]:.2f}x"]
        cells += [f"{workload.steps / t['env']:,.0f}", f"{t['rlrun'] / t['env']:.2f}x"]
        rows.append("| " + " | ".join(cells) + " |")
        print(rows[-1], flush=True)
    print("\n".join(rows))


if __name__ == "__main__":
    main()
