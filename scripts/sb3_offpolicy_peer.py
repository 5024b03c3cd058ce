"""Stable-Baselines3 SAC, TD3 (rlrun's MuJoCo presets) and DQN (rlrun's CartPole preset), for
side-by-side speed runs.

Usage: python scripts/sb3_offpolicy_peer.py WORKLOAD STEPS [DEVICE]   (run by scripts/benchmark.py; DEVICE defaults to cpu)

Both use 256-256 ReLU networks, batch 256, a 1M buffer, one gradient step per env step
(train_freq 1, gradient_steps 1), tau 0.005, gamma 0.99 and no normalisation, as rlrun's
sac_mujoco and td3_mujoco presets; learning_starts is 1000 on both sides. DQN
uses rlrun's dqn_classic preset (SB3 Zoo's tuned CartPole settings) as it is.
"""

from __future__ import annotations

import sys

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3 import DQN, SAC, TD3
from stable_baselines3.common.noise import NormalActionNoise

NET = {"net_arch": [256, 256], "activation_fn": torch.nn.ReLU}
LEARNING_STARTS = 1_000


def sac_hopper(steps: int, device: str) -> None:
    """rlrun's sac_mujoco preset: lr 3e-4 for actor, critics and the entropy temperature (auto)."""
    model = SAC(
        "MlpPolicy", "Hopper-v4", learning_rate=3e-4, buffer_size=1_000_000, learning_starts=LEARNING_STARTS,
        batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, ent_coef="auto",
        policy_kwargs=NET, seed=0, verbose=0, device=device,
    )
    model.learn(total_timesteps=steps)


def td3_hopper(steps: int, device: str) -> None:
    """rlrun's td3_mujoco preset: lr 1e-3, exploration noise 0.1, target noise 0.2 clipped at 0.5, delay 2."""
    env = gym.make("Hopper-v4")
    action_dim = env.action_space.shape[0]
    model = TD3(
        "MlpPolicy", env, learning_rate=1e-3, buffer_size=1_000_000, learning_starts=LEARNING_STARTS,
        batch_size=256, tau=0.005, gamma=0.99, train_freq=1, gradient_steps=1, policy_delay=2,
        target_policy_noise=0.2, target_noise_clip=0.5,
        action_noise=NormalActionNoise(np.zeros(action_dim), 0.1 * np.ones(action_dim)),
        policy_kwargs=NET, seed=0, verbose=0, device=device,
    )
    model.learn(total_timesteps=steps)


def dqn_cartpole(steps: int, device: str) -> None:
    """rlrun's dqn_classic preset: 256-256 ReLU, lr 1e-3 linearly annealed, batch 64, buffer 100k,
    64 gradient steps every 256 env steps, target copy every 10 steps, ε 1 -> 0.04 over 16%."""
    model = DQN(
        "MlpPolicy", "CartPole-v1", learning_rate=lambda progress: 1e-3 * progress, buffer_size=100_000,
        learning_starts=LEARNING_STARTS, batch_size=64, gamma=0.99, train_freq=256, gradient_steps=64,
        target_update_interval=10, exploration_fraction=0.16, exploration_final_eps=0.04, max_grad_norm=10,
        policy_kwargs=NET, seed=0, verbose=0, device=device,
    )
    model.learn(total_timesteps=steps)


WORKLOADS = {"sac_hopper": sac_hopper, "td3_hopper": td3_hopper, "dqn_cartpole": dqn_cartpole}

if __name__ == "__main__":
    gym.logger.min_level = 40
    WORKLOADS[sys.argv[1]](int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "cpu")
