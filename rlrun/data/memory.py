"""Refuse storage that cannot fit before it is allocated: one line with its size and the key to
lower."""

from __future__ import annotations

from pathlib import Path

import torch

from rlrun.config import ConfigError

HEADROOM = 0.9
"""Fraction of the free memory a buffer may take (the rest is left to networks, envs and the OS)."""


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def free_bytes(device: torch.device) -> int | None:
    """Memory free for new allocations on `device`: MemAvailable, lowered by a cgroup limit on
    the CPU, or the CUDA device's free memory; None where it cannot be read."""
    if device.type == "cuda":
        return int(torch.cuda.mem_get_info(device)[0])
    available = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    limit, used = _read_int("/sys/fs/cgroup/memory.max"), _read_int("/sys/fs/cgroup/memory.current")
    if available is not None and limit is not None and used is not None:
        available = min(available, limit - used)
    return available


def gigabytes(nbytes: float) -> str:
    return f"{nbytes / 1e9:.1f} GB" if nbytes >= 1e8 else f"{nbytes / 1e6:.0f} MB"


def check_fits(nbytes: int, what: str, key: str, value: int, device: torch.device) -> None:
    """Raise ConfigError when `nbytes` for `what` exceed the free memory of `device`, naming
    `key` (now `value`) and a value that would fit."""
    free = free_bytes(device)
    if free is None or nbytes <= HEADROOM * free:
        return
    fitting = int(value * HEADROOM * free / nbytes)
    scale = 10 ** max(len(str(fitting)) - 2, 0)  # two significant digits, rounded down
    fitting = fitting // scale * scale
    raise ConfigError(
        f"{what} needs {gigabytes(nbytes)}, more than the {gigabytes(free)} of free memory "
        f"on {device}; "
        f"lower {key} (now {value:,}; about {key}={max(fitting, 1)} fits)"
    )
