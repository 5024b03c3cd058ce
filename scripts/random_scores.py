"""The return of a uniform-random policy on each env: the low anchor of `rlrun-report`'s normalisation.

Plays `--episodes` episodes per env with actions drawn uniformly from the action space (the
space's own generator, seeded), raw rewards, episodes ended at the env's registered time limit,
and writes `rlrun/results/reference/random.csv` (env, env_version, mean, std, episodes, source). Re-run
it after a Gymnasium upgrade:

    python scripts/random_scores.py                       # every env below
    python scripts/random_scores.py CartPole-v1 --episodes 20 --out /tmp/random.csv
"""

from __future__ import annotations

import argparse
import csv
from pathlib import Path

import gymnasium as gym
import numpy as np

from rlrun.results.references import RANDOM_COLUMNS, RANDOM_SCORES, split_env_id

ENVS = (
    "CartPole-v1", "Acrobot-v1", "MountainCar-v0", "MountainCarContinuous-v0", "Pendulum-v1",
    "Hopper-v4", "HalfCheetah-v4", "Walker2d-v4", "Ant-v4", "Swimmer-v4", "Humanoid-v4",
    "InvertedPendulum-v4", "InvertedDoublePendulum-v4", "Reacher-v4", "Pusher-v5",
    "LunarLander-v3", "LunarLanderContinuous-v3", "BipedalWalker-v3",
)
"""The envs measured by default: classic control, MuJoCo and Box2D ids of Gymnasium 1.x (Pusher-v4
needs mujoco<3, hence v5)."""


def random_returns(env_id: str, episodes: int, seed: int) -> np.ndarray:
    """Undiscounted raw returns of `episodes` uniform-random episodes of `env_id`."""
    env = gym.make(env_id)
    env.action_space.seed(seed)
    returns = []
    for episode in range(episodes):
        env.reset(seed=seed + episode)
        total, done = 0.0, False
        while not done:
            _, reward, terminated, truncated, _ = env.step(env.action_space.sample())
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return np.array(returns)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("envs", nargs="*", default=list(ENVS), help="Gymnasium ids (default: all)")
    parser.add_argument("--episodes", type=int, default=100, help="episodes per env")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first episode")
    parser.add_argument("--out", type=Path, default=RANDOM_SCORES, help="CSV to write")
    args = parser.parse_args()
    source = (f"scripts/random_scores.py: uniform-random actions, {args.episodes} episodes, seeds "
              f"{args.seed}-{args.seed + args.episodes - 1}, gymnasium {gym.__version__}")
    rows = []
    for env_id in args.envs:
        returns = random_returns(env_id, args.episodes, args.seed)
        rows.append([*split_env_id(env_id), f"{returns.mean():.2f}", f"{returns.std():.2f}",
                     args.episodes, source])
        print(f"{env_id}: {returns.mean():.2f} ± {returns.std():.2f}", flush=True)
    with args.out.open("w", newline="") as file:  # written once every env is measured
        writer = csv.writer(file)
        writer.writerow(RANDOM_COLUMNS)
        writer.writerows(rows)


if __name__ == "__main__":
    main()
