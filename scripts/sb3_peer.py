"""Stable-Baselines3 at rlrun's preset settings, for side-by-side speed runs.

Usage: python scripts/sb3_peer.py WORKLOAD STEPS [DEVICE]   (run by scripts/benchmark.py; DEVICE defaults to cpu)
"""

from __future__ import annotations

import sys

import gymnasium as gym
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.env_util import make_vec_env
from stable_baselines3.common.vec_env import VecNormalize


def linear(lr: float):
    return lambda progress_remaining: progress_remaining * lr


def ppo_hopper(steps: int, device: str) -> None:
    """CleanRL ppo_continuous_action settings (rlrun's ppo_mujoco preset)."""
    env = VecNormalize(make_vec_env("Hopper-v4", n_envs=1, seed=0), gamma=0.99, clip_obs=10.0, clip_reward=10.0)
    model = PPO(
        "MlpPolicy", env, n_steps=2048, batch_size=64, n_epochs=10, learning_rate=linear(3e-4), gamma=0.99,
        gae_lambda=0.95, clip_range=0.2, ent_coef=0.0, vf_coef=0.5, max_grad_norm=0.5, seed=0, verbose=0, device=device,
        policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": torch.nn.Tanh, "log_std_init": 0.0},
    )
    model.learn(total_timesteps=steps)


def ppo_cartpole(steps: int, device: str) -> None:
    """CleanRL ppo.py settings (rlrun's ppo_classic preset)."""
    env = make_vec_env("CartPole-v1", n_envs=4, seed=0)
    model = PPO(
        "MlpPolicy", env, n_steps=128, batch_size=128, n_epochs=4, learning_rate=linear(2.5e-4), gamma=0.99,
        gae_lambda=0.95, clip_range=0.2, ent_coef=0.01, vf_coef=0.5, max_grad_norm=0.5, seed=0, verbose=0, device=device,
        policy_kwargs={"net_arch": {"pi": [64, 64], "vf": [64, 64]}, "activation_fn": torch.nn.Tanh},
    )
    model.learn(total_timesteps=steps)


WORKLOADS = {"ppo_hopper": ppo_hopper, "ppo_cartpole": ppo_cartpole}

if __name__ == "__main__":
    gym.logger.min_level = 40
    WORKLOADS[sys.argv[1]](int(sys.argv[2]), sys.argv[3] if len(sys.argv) > 3 else "cpu")
