"""SAC on Hopper-v4, rlrun against Stable-Baselines3 at identical settings: evaluation returns.

Usage: python scripts/sac_peer_returns.py {rlrun,rlrun_clamped_log_std,sb3} SEED STEPS OUT.json

Both sides: 256-256 ReLU networks, Adam lr 3e-4 (actor, critics, temperature), batch 256, 1M
buffer, 5,000 uniform random steps, one gradient step per env step, tau 0.005, gamma 0.99,
automatic temperature from 1.0 toward -dim(A), one torch thread. Every 10,000 env steps the
deterministic policy is evaluated on 10 episodes of a separate env (seeds 10_000 + i), the same
protocol on both sides. `rlrun_clamped_log_std` is rlrun with SB3's actor log-std (clamped to
[-20, 2], so an untrained actor has σ ≈ 1) in place of rlrun's smooth squash into [-5, 2]
(σ ≈ 0.22 at initialisation), to test whether the initial exploration explains a gap.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import gymnasium as gym
import numpy as np
import torch

EVAL_EVERY, EVAL_EPISODES, LEARNING_STARTS = 10_000, 10, 5_000


def evaluate(act) -> float:
    """Mean return of `EVAL_EPISODES` deterministic episodes; `act(obs) -> action`."""
    env = gym.make("Hopper-v4")
    returns = []
    for episode in range(EVAL_EPISODES):
        obs, _ = env.reset(seed=10_000 + episode)
        done, total = False, 0.0
        while not done:
            obs, reward, terminated, truncated, _ = env.step(act(obs))
            total += float(reward)
            done = terminated or truncated
        returns.append(total)
    return float(np.mean(returns))


def run_sb3(seed: int, steps: int) -> list[tuple[int, float]]:
    from stable_baselines3 import SAC
    from stable_baselines3.common.callbacks import BaseCallback

    curve: list[tuple[int, float]] = []

    class Every(BaseCallback):
        def _on_step(self) -> bool:
            if self.num_timesteps % EVAL_EVERY == 0:
                model = self.model
                curve.append((self.num_timesteps,
                              evaluate(lambda obs: model.predict(obs, deterministic=True)[0])))
            return True

    model = SAC(
        "MlpPolicy", "Hopper-v4", learning_rate=3e-4, buffer_size=1_000_000,
        learning_starts=LEARNING_STARTS, batch_size=256, tau=0.005, gamma=0.99, train_freq=1,
        gradient_steps=1, ent_coef="auto", seed=seed, verbose=0, device="cpu",
        policy_kwargs={"net_arch": [256, 256], "activation_fn": torch.nn.ReLU},
    )
    model.learn(total_timesteps=steps, callback=Every())
    return curve


def clamp_log_std() -> None:
    """Replace rlrun's log-std squash with SB3's clamp (this process only)."""
    from rlrun.networks import continuous
    from rlrun.ops.distributions import TanhGaussian

    def dist(self, obs: torch.Tensor) -> TanhGaussian:
        mean, log_std = self.head(self.torso(obs)).chunk(2, dim=-1)
        return TanhGaussian(mean, log_std.clamp(-20.0, 2.0))

    continuous.TanhGaussianActor.dist = dist


def run_rlrun(seed: int, steps: int) -> list[tuple[int, float]]:
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from rlrun.cli import train_command as cli
    from rlrun.registry import algorithms
    from rlrun.run.facade import Run

    cli._setup()
    with initialize_config_dir(config_dir=cli.CONF_DIR, version_base="1.3"):
        cfg = OmegaConf.to_object(compose(config_name="train", overrides=[
            "algo=sac", "env=Hopper-v4", f"seed={seed}", f"total_timesteps={steps}",
            f"algo.learning_starts={LEARNING_STARTS}", "eval.every_steps=0", "eval.episodes=1",
            "logger.console=false",
        ]))
    with tempfile.TemporaryDirectory() as run_dir:
        run = Run(cfg, Path(run_dir))
        spec = algorithms()["sac"]
        curve: list[tuple[int, float]] = []
        original = run.maybe_evaluate

        def maybe_evaluate(actor, global_step: int) -> None:
            if global_step % EVAL_EVERY == 0:
                def act(obs: np.ndarray) -> np.ndarray:
                    with torch.no_grad():
                        return actor.act(torch.as_tensor(obs[None], dtype=torch.float32))[0].numpy()

                curve.append((global_step, evaluate(act)))

        run.maybe_evaluate = maybe_evaluate
        spec.train(cfg, run)
        run.maybe_evaluate = original
    return curve


def main() -> None:
    side, seed, steps, out = sys.argv[1], int(sys.argv[2]), int(float(sys.argv[3])), Path(sys.argv[4])
    torch.set_num_threads(1)
    if side == "rlrun_clamped_log_std":
        clamp_log_std()
    curve = run_sb3(seed, steps) if side == "sb3" else run_rlrun(seed, steps)
    out.write_text(json.dumps({"side": side, "seed": seed, "curve": curve}))
    print(side, seed, " ".join(f"{v:.0f}" for _, v in curve))


if __name__ == "__main__":
    main()
