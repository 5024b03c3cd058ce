"""Start-up time of rlrun's commands that do no training: the median wall time of several runs
of each, in fresh processes (the target is under 1.5 s each).

    python scripts/startup_time.py [--repeats 5]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = (
    ("rlrun", "--help"),
    ("rlrun", "--cfg", "job"),
    ("rlrun-eval", "--help"),
    ("rlrun-report", "--help"),
)
"""The commands measured: help and the composed config, which need neither torch nor an env."""


def seconds(command: tuple[str, ...]) -> float:
    """Wall time of one run of `command` (it must exit 0)."""
    exe = Path(sys.executable).parent / command[0]
    started = time.perf_counter()
    subprocess.run([str(exe if exe.exists() else shutil.which(command[0])), *command[1:]],
                   check=True, capture_output=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="runs per command (default 5)")
    args = parser.parse_args()
    for command in COMMANDS:
        times = [seconds(command) for _ in range(args.repeats)]
        print(f"{' '.join(command):<24} median {statistics.median(times):.2f} s  "
              f"(min {min(times):.2f}, max {max(times):.2f}, {args.repeats} runs)")


if __name__ == "__main__":
    main()
