"""Side-by-side speed: Stable-Baselines3, then rlrun, then the env alone, at identical settings.

Whole-process wall time (interpreter start, imports, training, rlrun's final evaluation and
checkpoints included) on the same machine in one invocation; prints a markdown table with
steps/s and ratios. Needs the `bench` extra (stable-baselines3).

    python scripts/benchmark.py                       # all workloads
    python scripts/benchmark.py ppo_hopper --repeats 3
    python scripts/benchmark.py --device cuda          # both tools on the GPU
    python scripts/benchmark.py sac_hopper --also torch_threads=auto   # a second rlrun column
"""

from __future__ import annotations

import argparse
import importlib.util
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
RLRUN = str(Path(PYTHON).parent / "rlrun")


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


def timed(command: list[str], cwd: Path) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, check=False, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{result.stderr[-2000:]}")
    return time.perf_counter() - start


def measure(workload: Workload, repeats: int, out_dir: Path, device: str,
            variants: dict[str, list[str]]) -> dict[str, float]:
    """Median seconds of SB3, of rlrun with each variant's extra overrides, and of the env alone."""
    times: dict[str, list[float]] = {"sb3": [], **{name: [] for name in variants}, "env": []}
    for repeat in range(repeats):
        times["sb3"].append(timed([PYTHON, str(ROOT / "scripts" / workload.peer),
                                   workload.peer_workload or workload.name, str(workload.steps), device], ROOT))
        for index, (name, extra) in enumerate(variants.items()):
            run_dir = out_dir / f"{workload.name}_{repeat}_{index}"
            shutil.rmtree(run_dir, ignore_errors=True)  # a fresh run, not a resume of an earlier one
            times[name].append(timed([RLRUN, *workload.rlrun_args, f"total_timesteps={workload.steps}",
                                      f"hydra.run.dir={run_dir}", "eval.every_steps=0", f"device={device}",
                                      *extra], ROOT))
        times["env"].append(timed([PYTHON, "-c", ENV_ONLY, workload.env_id, str(workload.num_envs),
                                   str(workload.steps)], ROOT))
    return {name: statistics.median(values) for name, values in times.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workloads", nargs="*", default=[w.name for w in WORKLOADS])
    parser.add_argument("--repeats", type=int, default=1, help="runs per tool; the median time is reported")
    parser.add_argument("--out", type=Path, default=ROOT / "outputs" / "benchmark")
    parser.add_argument("--device", default="cpu", help="where both tools put their networks: cpu or cuda")
    parser.add_argument("--also", nargs="+", default=None, metavar="KEY=VALUE",
                        help="also time rlrun with these overrides (e.g. torch_threads=auto), in extra columns")
    args = parser.parse_args()
    variants = {"rlrun": []}
    if args.also:
        variants[f"rlrun {' '.join(args.also)}"] = args.also
    header = ["workload", "steps", "SB3 steps/s"]
    for name in variants:
        header += [f"{name} steps/s", f"{name} / SB3"]
    header += ["env-only steps/s", "rlrun time / env time"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for workload in (w for w in WORKLOADS if w.name in args.workloads):
        if "env.backend=envpool" in workload.rlrun_args and importlib.util.find_spec("envpool") is None:
            print(f"skipping {workload.name}: EnvPool is not installed (pip install -e '.[envpool]')", flush=True)
            continue
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
