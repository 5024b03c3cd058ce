"""Behaviour fingerprint of every algorithm: record it before a restructuring, check it after.

Usage:
    python scripts/fingerprint.py check scripts/behaviour_fingerprint.json [CASE ...]
    python scripts/fingerprint.py record FILE.json [CASE ...]

scripts/behaviour_fingerprint.json was recorded at commit bd087b5 (before the packages were laid
out by layer and each algorithm's loss moved into its module), every case, on a 2-core
"Intel(R) Xeon(R) Processor" (lscpu's model name); the code after that restructuring matches it
bit for bit there. Earlier recordings, made on another CPU, differed from the same code here in
float rounding only. A change that should not alter behaviour must pass `check` against it on a
2-core x86 CPU like the one it was recorded on (bitwise equality can differ across CPUs), or
against a recording of its base commit made on the same machine.

Each case is a short `deterministic=true` run of one algorithm (the cases of
tests/test_resume_exact.py, one per algorithm family, and `NOT_REPLAYABLE`), trained by the
`rlrun` command in its own process. The fingerprint holds every `train/*`, `rollout/*` and `eval/*` metric row with its step,
and a SHA-256 of every tensor of the final checkpoint (modules, optimisers, generator states).
`check` re-runs the cases and names each metric and tensor that differs; it exits 1 if any does.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from rlrun.run.checkpoint_files import load_checkpoint

ROOT = Path(__file__).resolve().parent.parent
RLRUN = str(Path(sys.executable).parent / "rlrun")
BEHAVIOUR_PREFIXES = ("train/", "rollout/", "eval/")
CONTAINERS = (torch.Tensor, dict, list, tuple)


NOT_REPLAYABLE = {
    # Stacked Atari frames in the frame-stack replay (it wraps; life losses end episodes), with a
    # narrow dense layer to keep the checkpoint small. Not in the exact-resume test: ALE episodes
    # cannot be rebuilt by replaying their actions, so a resumed run starts fresh episodes.
    "dqn_atari": ["algo=dqn", "env=ALE/Breakout-v5", "network.hidden_sizes=[16]",
                  "algo.learning_starts=100", "algo.buffer_size=100", "algo.batch_size=8",
                  "algo.target_update_every=100", "total_timesteps=400",
                  "checkpoint.every_steps=100", "eval.every_steps=200", "eval.max_episode_steps=50"],
}
"""Cases beyond the exact-resume test's, for what a resumed run cannot repeat bit for bit."""


def cases() -> dict[str, list[str]]:
    """The per-algorithm runs of the exact-resume test and `NOT_REPLAYABLE`, with the test's
    common options."""
    sys.path.insert(0, str(ROOT / "tests"))  # the test imports its helpers from conftest
    spec = importlib.util.spec_from_file_location("cases", ROOT / "tests" / "test_resume_exact.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: [*args, *module.COMMON]
            for name, args in {**module.FAMILIES, **NOT_REPLAYABLE}.items()}


def tensor_digests(value, path: str = "") -> dict[str, str]:
    """SHA-256 of each tensor and list of plain values (the repr of any other value) in a nested
    checkpoint, keyed by its path."""
    if isinstance(value, torch.Tensor):
        data = value.detach().cpu().contiguous().reshape(-1)
        raw = data.view(torch.uint8).numpy().tobytes() if data.numel() else b""
        return {path: f"{value.dtype}{list(value.shape)}:{hashlib.sha256(raw).hexdigest()}"}
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)) and any(isinstance(v, CONTAINERS) for v in value):
        items = enumerate(value)
    elif isinstance(value, (list, tuple)):  # e.g. a generator state: one digest for the list
        return {path: f"list[{len(value)}]:{hashlib.sha256(repr(value).encode()).hexdigest()}"}
    else:
        return {path: repr(value)}
    digests: dict[str, str] = {}
    for key, item in items:
        digests.update(tensor_digests(item, f"{path}.{key}" if path else str(key)))
    return digests


def fingerprint(args: list[str]) -> dict:
    """Train one case in a fresh process and fingerprint its metrics and final checkpoint.
    Paths inside the checkout (an expert's checkpoint) are given relative to it, so that the
    stored config is the same in every checkout."""
    args = [arg.replace(f"{ROOT}/", "") for arg in args]
    with tempfile.TemporaryDirectory() as run_dir:
        done = subprocess.run([RLRUN, *args, f"hydra.run.dir={run_dir}"], capture_output=True,
                              text=True, env={**os.environ, "WANDB_MODE": "offline"}, check=False,
                              cwd=ROOT)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(args)} failed:\n{done.stderr[-2000:]}")
        metrics = []
        for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines():
            row = json.loads(line)
            kept = {k: v for k, v in row.items() if k.startswith(BEHAVIOUR_PREFIXES)}
            if kept:
                metrics.append({"step": row.get("step"), **kept})
        checkpoint = load_checkpoint(Path(run_dir) / "checkpoints" / "last.pt")
        return {"metrics": metrics, "tensors": tensor_digests(checkpoint)}


def differences(old: dict, new: dict) -> list[str]:
    """Human-readable differences between two fingerprints of one case."""
    found = []
    if len(old["metrics"]) != len(new["metrics"]):
        found.append(f"{len(old['metrics'])} metric rows before, {len(new['metrics'])} now")
    for i, (a, b) in enumerate(zip(old["metrics"], new["metrics"])):
        for key in sorted(a.keys() | b.keys()):
            if a.get(key) != b.get(key):
                found.append(f"row {i} (step {a.get('step')}) {key}: {a.get(key)} -> {b.get(key)}")
    for key in sorted(old["tensors"].keys() | new["tensors"].keys()):
        if old["tensors"].get(key) != new["tensors"].get(key):
            found.append(f"tensor {key} differs" if key in old["tensors"] and key in new["tensors"]
                         else f"tensor {key} only {'before' if key in old['tensors'] else 'now'}")
    return found


def main() -> None:
    if len(sys.argv) < 3 or sys.argv[1] not in ("record", "check"):
        raise SystemExit(__doc__)
    mode, file, chosen = sys.argv[1], Path(sys.argv[2]), sys.argv[3:]
    selected = {name: args for name, args in cases().items() if not chosen or name in chosen}
    if mode == "record":
        recorded = json.loads(file.read_text()) if file.exists() else {}
        for name, args in selected.items():
            recorded[name] = fingerprint(args)
            print(f"recorded {name}: {len(recorded[name]['metrics'])} metric rows, "
                  f"{len(recorded[name]['tensors'])} tensors", flush=True)
        file.write_text(json.dumps(recorded, indent=1, sort_keys=True) + "\n")
        return
    recorded = json.loads(file.read_text())
    failed = False
    for name, args in selected.items():
        if name not in recorded:  # a case added after the recording: nothing to compare with
            print(f"{name}: not in {file}; record it there first", flush=True)
            failed = True
            continue
        found = differences(recorded[name], fingerprint(args))
        print(f"{name}: {'same' if not found else f'{len(found)} differences'}", flush=True)
        for line in found[:20]:
            print(f"  {line}")
        failed |= bool(found)
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
