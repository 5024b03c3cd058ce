"""Checks of an env config before and while envs are built: a known id, a scalar reward, not the
in-process language task; and the process settings envs need (off-screen rendering, MuJoCo
warnings once)."""

from __future__ import annotations

import os
import sys
from functools import cache

import gymnasium as gym
import numpy as np

from rlrun.config import ConfigError, EnvConfig
from rlrun.envs.imports import UNKNOWN_ENV_HINT, registry_id
from rlrun.envs.vector import non_scalar_reward


def check_env_id(env_id: str) -> None:
    """Refuse an id that Gymnasium does not know (after its modules' import), naming close matches."""
    from rlrun.envs.config_source import registered_env_ids, similar_env_ids

    if registry_id(env_id) not in registered_env_ids():
        close = similar_env_ids(env_id)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown env '{env_id}'{hint} ({UNKNOWN_ENV_HINT})")


def render_off_screen() -> None:
    """Without a display, render MuJoCo through EGL and pygame off-screen, unless MUJOCO_GL or
    SDL_VIDEODRIVER says otherwise. Call it before the env's modules are imported: dm_control
    picks its renderer when it is imported."""
    if "DISPLAY" not in os.environ:
        os.environ.setdefault("MUJOCO_GL", "egl")
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def refuse_in_process_task(cfg: EnvConfig) -> None:
    """Refuse env=lm, the in-process language task, for algorithms that need Gymnasium envs."""
    if cfg.family == "lm":
        raise ConfigError(
            f"env={cfg.id} is the in-process language-model task of algo=ppo_lm and algo=grpo, not a Gymnasium env"
        )


def check_scalar_rewards(env: gym.Env, env_id: str) -> None:
    """Refuse an env that declares vector rewards (a `reward_space` of several numbers, as
    MO-Gymnasium's envs do) unless the wrappers in `env.wrappers` make them one: a step tells."""
    shape = getattr(getattr(env.unwrapped, "reward_space", None), "shape", None)
    if not shape or np.prod(shape) == 1:
        return
    env.reset(seed=0)
    reward = env.step(env.action_space.sample())[1]
    if np.ndim(reward) > 0:
        raise non_scalar_reward(reward, f"env {env_id}")


@cache
def mujoco_warnings_once() -> None:
    """Show each MuJoCo warning once per process: MuJoCo prints a model's compiler warnings (e.g.
    HalfCheetah's deprecated `settotalmass`) every time an env of it is built."""
    try:
        import mujoco
    except ImportError:
        return
    shown: set[str] = set()

    def warn(message: str) -> None:
        if message not in shown:
            shown.add(message)
            print(f"WARNING: {message}", file=sys.stderr, flush=True)

    mujoco.set_mju_user_warning(warn)
