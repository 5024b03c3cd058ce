"""Atari 2600 preprocessing of Mnih et al. (2015), as in the DQN and PPO Atari baselines.

`wrap_atari` turns an ALE env made with `frameskip=1` into the standard agent view:
up to 30 no-op actions at reset, the same action repeated for 4 frames with the maximum
over the last two (flicker removal), 84x84 greyscale frames, FIRE pressed to launch games
that need it, and the last 4 frames stacked into a (4, 84, 84) uint8 observation.

Training envs also end an episode at each life loss (the game goes on at the next reset)
and clip rewards to their sign, so their `rollout/` returns are clipped per-life sums.
Evaluation envs play whole games and report raw scores (the `eval/` metrics). Sticky
actions (`repeat_action_probability`) stay as the env id defines.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.wrappers import AtariPreprocessing, FrameStackObservation, TransformReward

from rlrun.extras import install_hint

try:
    import ale_py
except ImportError as error:  # pragma: no cover - depends on the installed extras
    raise gym.error.DependencyNotInstalled(
        f"Atari envs need ale-py: {install_hint('atari')}"
    ) from error

gym.register_envs(ale_py)

NOOP_MAX = 30
"""Most no-op actions at reset (count)."""
FRAME_SKIP = 4
"""Frames each action is repeated for (count)."""
SCREEN_SIZE = 84
"""Side of the square greyscale frame (pixels)."""
FRAME_STACK = 4
"""Frames stacked into one observation (count)."""
FIRE = 1
"""ALE action index of FIRE in the minimal action sets that have it."""


def _lives(env: gym.Env) -> int:
    return env.unwrapped.ale.lives()


class EpisodicLife(gym.Wrapper):
    """Ends the episode at each life loss; `reset` then continues the game with a no-op step.

    The game is reset only when it is really over (terminated or truncated).
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0
        self.game_over = True

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        self.game_over = terminated or truncated
        lives = _lives(self.env)
        terminated = terminated or 0 < lives < self.lives
        self.lives = lives
        return obs, reward, terminated, truncated, info

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        if self.game_over:
            obs, info = self.env.reset(**kwargs)
        else:
            obs, _, terminated, truncated, info = self.env.step(0)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = _lives(self.env)
        self.game_over = False
        return obs, info


class FireReset(gym.Wrapper):
    """Presses FIRE (then action 2) at reset, and FIRE after a life loss not ending the episode.

    Games such as Breakout wait for FIRE to serve; without the press after a life loss a
    greedy evaluation policy can stand still until the frame limit.
    """

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.lives = 0

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        self.env.reset(**kwargs)
        for action in (FIRE, 2):
            obs, _, terminated, truncated, info = self.env.step(action)
            if terminated or truncated:
                obs, info = self.env.reset(**kwargs)
        self.lives = _lives(self.env)
        return obs, info

    def step(self, action: Any) -> tuple[Any, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if _lives(self.env) < self.lives and not (terminated or truncated):
            obs, fire_reward, terminated, truncated, info = self.env.step(FIRE)
            reward += fire_reward
        self.lives = _lives(self.env)
        return obs, reward, terminated, truncated, info


def wrap_atari(env: gym.Env, training: bool) -> gym.Env:
    """The preprocessing chain; `training` adds life-loss episodes and reward clipping."""
    env = AtariPreprocessing(
        env,
        noop_max=NOOP_MAX,
        frame_skip=FRAME_SKIP,
        screen_size=SCREEN_SIZE,
        terminal_on_life_loss=False,
        grayscale_obs=True,
    )
    if training:
        env = EpisodicLife(env)
    if env.unwrapped.get_action_meanings()[FIRE : FIRE + 1] == ["FIRE"]:
        env = FireReset(env)
    if training:
        env = TransformReward(env, np.sign)
    return FrameStackObservation(env, FRAME_STACK)
