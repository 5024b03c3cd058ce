"""Write the run dirs that tests/test_old_checkpoints.py loads, resumes and evaluates: checkpoints
of this commit that a later rlrun must still read.

Usage:
    python scripts/make_checkpoint_fixtures.py [CASE ...]   (every case without one)

Each case of scripts/fingerprint.py (one per algorithm family, and frame-stack replay, Dict
observations and normalisation) is trained by the `rlrun` command for half its budget (bc and
dagger, which stop after their epochs, for fewer samples than those), so that resuming it with a
larger `total_timesteps` trains on, with smaller networks and buffers to keep the files small. It
runs from the repository root, with paths into the repository (the bc and dagger expert) given
relative to it, so the stored config names no local folder.
Kept under tests/fixtures/checkpoints/<case>/ is what resuming and evaluating read:
`checkpoints/last.pt`, the side files it names (`checkpoints/replay.pt`), and `.hydra/config.yaml`
and `overrides.yaml`; numbered checkpoints, `best.pt`, metrics and logs are left out.
`COMMIT` beside them names the commit that wrote them.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fingerprint import RLRUN, ROOT, cases

from rlrun.run.checkpoint_files import load_checkpoint

FIXTURES = ROOT / "tests" / "fixtures" / "checkpoints"
SMALL_NETWORK = "network.hidden_sizes=[16,16]"
"""The MLP of every fixture but `OWN_NETWORK`'s (the checkpoints' size is mostly weights)."""
OWN_NETWORK = ("ppo_lm", "grpo", "dqn_atari")
FIXTURE_OVERRIDES = {
    "bc": ["total_timesteps=2000"],  # samples, below its epochs'
    "dagger": ["total_timesteps=1500"],
    "rlhf": ["algo.total_annotations=64", "algo.rm_hidden_sizes=[16,16]"],  # pairs all kept
    "dqn_atari": ["algo.buffer_size=40"],  # a frame is 7 KB
}
"""Overrides of single cases, after the common ones."""
HYDRA_FILES = ("config.yaml", "overrides.yaml")


def fixture_args(name: str, args: list[str]) -> list[str]:
    """The case's overrides with half its budget, `SMALL_NETWORK`, `FIXTURE_OVERRIDES` and paths
    into the repository made relative."""
    budget = next((int(arg.partition("=")[2]) for arg in args
                   if arg.startswith("total_timesteps=")), None)
    changed = [f"total_timesteps={budget // 2}"] if budget else []
    changed += [] if name in OWN_NETWORK else [SMALL_NETWORK]
    changed += FIXTURE_OVERRIDES.get(name, [])
    by_key = {line.partition("=")[0]: line for line in changed}
    kept = [arg.replace(f"{ROOT}{os.sep}", "") for arg in args
            if arg.partition("=")[0] not in by_key]
    return [*kept, *by_key.values()]


def make(name: str, args: list[str], commit: str) -> int:
    """Train one case and copy what its resume and evaluation need; returns the bytes kept."""
    target = FIXTURES / name
    with tempfile.TemporaryDirectory() as run_dir:
        done = subprocess.run([RLRUN, *fixture_args(name, args), f"hydra.run.dir={run_dir}"],
                              cwd=ROOT, capture_output=True, text=True, check=False,
                              env={**os.environ, "WANDB_MODE": "offline"})
        if done.returncode != 0:
            raise SystemExit(f"{name} failed:\n{done.stderr[-2000:]}")
        shutil.rmtree(target, ignore_errors=True)
        (target / "checkpoints").mkdir(parents=True)
        (target / ".hydra").mkdir()
        last = Path(run_dir) / "checkpoints" / "last.pt"
        modules = load_checkpoint(last)["modules"]
        side_files = [entry["side_file"] for entry in modules.values()
                      if isinstance(entry, dict) and "side_file" in entry]
        for file in ["last.pt", *side_files]:
            shutil.copy2(last.parent / file, target / "checkpoints" / file)
        for file in HYDRA_FILES:
            shutil.copy2(Path(run_dir) / ".hydra" / file, target / ".hydra" / file)
        (target / "COMMIT").write_text(commit)
    return sum(path.stat().st_size for path in target.rglob("*") if path.is_file())


def main() -> None:
    chosen = sys.argv[1:]
    selected = {name: args for name, args in cases().items() if not chosen or name in chosen}
    if unknown := sorted(set(chosen) - set(selected)):
        raise SystemExit(f"unknown cases {unknown}; the cases are {sorted(cases())}")
    commit = subprocess.run(["git", "describe", "--always", "--dirty"], cwd=ROOT,
                            capture_output=True, text=True, check=True).stdout
    for name, args in selected.items():
        print(f"{name}: {make(name, args, commit) / 1024:.0f} KiB", flush=True)


if __name__ == "__main__":
    main()
