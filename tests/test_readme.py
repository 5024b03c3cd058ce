"""Every `rlrun`, `rlrun-eval` and `rlrun-report` command of the README's code blocks runs.

Training commands get a small budget (their `total_timesteps` and evaluation sizes replaced);
placeholders such as `<run>` or `<date>/<time>` become the newest matching dir the earlier
commands wrote. Only commands that need hardware or a cluster this machine lacks are skipped,
each for a stated reason.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import torch

README = Path(__file__).resolve().parent.parent / "README.md"
BUDGET = {"total_timesteps": "600", "eval.episodes": "2", "eval.num_envs": "2"}
"""Values that make a README training command small."""
EXTENDED = "5000"
"""The `total_timesteps` of a README command that extends a run (over one PPO MuJoCo iteration)."""
SEARCH_BUDGET = {"hydra.sweeper.n_trials": "2", "hparams_search.seeds": "[0]"}
SKIPPED = {
    "hydra/launcher=submitit_slurm": "needs a Slurm cluster",
    "hydra/launcher=ray": "needs a running Ray cluster",
    **({} if torch.cuda.is_available() else {"device=cuda": "needs a CUDA GPU"}),
}
"""A fragment of a command, and why commands holding it cannot run here."""


def readme_commands() -> list[str]:
    """The rlrun commands of the README's bash blocks, continuation lines joined, comments cut."""
    blocks = re.findall(r"```bash\n(.*?)```", README.read_text(), flags=re.DOTALL)
    commands = []
    for block in blocks:
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            words = line.split()
            while words and re.fullmatch(r"[A-Z_]+=\S*", words[0]):  # VAR=value prefixes
                words = words[1:]
            if words and words[0] in ("rlrun", "rlrun-eval", "rlrun-report"):
                commands.append(line)
    return commands


def _newest(cwd: Path, pattern: str) -> str:
    matches = sorted(cwd.glob(pattern), key=lambda path: path.stat().st_mtime)
    assert matches, f"nothing matches {pattern} for a README placeholder"
    return str(matches[-1].relative_to(cwd))


def resolve(word: str, cwd: Path) -> str:
    """A README word with its placeholders replaced by what the earlier commands wrote."""
    key, eq, value = word.rpartition("=") if "=" in word and "<" in word else ("", "", word)
    if "<" not in value:
        return word
    if value.startswith("outputs/multirun/<date>/<time>"):
        resolved = (
            _newest(cwd, "outputs/multirun/*/*") + value[len("outputs/multirun/<date>/<time>") :]
        )
    elif value in ("<run dir>", "<file>"):
        resolved = str(Path(_newest(cwd, "outputs/*/*/*/checkpoints/last.pt")).parent.parent)
        resolved += "/checkpoints/last.pt" if value == "<file>" else ""
    else:
        head, _, tail = value.partition("<run>")
        assert "<" not in head + tail, f"unknown placeholder in {word}"
        resolved = _newest(cwd, head + "*") + tail
    return f"{key}{eq}{resolved}"


def small(words: list[str]) -> list[str]:
    """A training command with the README's budget replaced by a small one."""
    budget = dict(BUDGET)
    if any(word.startswith("hparams_search=") for word in words):
        budget.update(SEARCH_BUDGET)
    kept = [word for word in words if word.partition("=")[0] not in budget]
    return [*kept, *(f"{key}={value}" for key, value in budget.items())]


@pytest.mark.slow
def test_every_readme_command_runs(tmp_path):
    commands = readme_commands()
    assert len(commands) >= 10
    ran, skipped = [], []
    for line in commands:
        reason = next((why for fragment, why in SKIPPED.items() if fragment in line), None)
        if reason:
            skipped.append((line, reason))
            continue
        words = shlex.split(line)
        env_vars = {}
        while re.fullmatch(r"[A-Z_]+=\S*", words[0]):
            name, _, value = words.pop(0).partition("=")
            env_vars[name] = value
        words = [resolve(word, tmp_path) for word in words]
        is_training = words[0] == "rlrun" and not any(
            w.startswith(("-h", "--help", "--cfg", "resume=")) for w in words
        )
        if is_training:
            words = [words[0], *small(words[1:])]
        elif words[0] == "rlrun-eval" or any(word.startswith("resume=") for word in words):
            smaller = {
                "eval.episodes": "2",
                "total_timesteps": EXTENDED,
            }  # evaluate less, extend a little
            words = [
                f"{w.partition('=')[0]}={smaller[w.partition('=')[0]]}"
                if w.partition("=")[0] in smaller
                else w
                for w in words
            ]
        exe = Path(sys.executable).parent / words[0]
        result = subprocess.run(
            [str(exe), *words[1:]],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=600,
            check=False,
            env={**os.environ, "WANDB_MODE": "offline", **env_vars},
        )
        assert result.returncode == 0, f"README command failed: {line}\n{result.stderr[-2000:]}"
        assert "Traceback" not in result.stdout + result.stderr, line
        ran.append(line)
    assert all(reason for _, reason in skipped)
    assert len(ran) >= len(commands) - len(SKIPPED), (ran, skipped)
