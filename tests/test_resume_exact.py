"""With deterministic=true, a run killed with SIGKILL and resumed ends bit for bit where the
uninterrupted run ends: every tensor of the final checkpoint is equal.

One run per algorithm, each killed after its first checkpoint: schedules (lr annealing, ε,
adaptive KL β, learned SAC temperature), replay buffers (DQN, SARSA, DDPG, TD3, SAC; one-hot
observations stored as indices; flattened Dict observations), running observation and return
statistics (MuJoCo normalisation), population state (CEM), expert datasets and DAgger rounds, the
RLHF reward model and the language-model pipeline (ppo_lm, grpo) all resume bit for bit."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import assert_same

from rlrun.run.checkpoint_files import load_checkpoint

RLRUN = str(Path(sys.executable).parent / "rlrun")
COMMON = ["deterministic=true", "logger.console=false", "eval.episodes=2", "eval.num_envs=2", "torch_threads=1"]

EXPERT = Path(__file__).parent / "data" / "idp_ppo_expert.pt"
LM = ["env=lm", "network.width=16", "network.layers=1", "network.heads=2", "algo.pretrain_steps=20",
      "algo.sft_steps=20", "algo.rm_pairs=64", "algo.rm_steps=20", "eval.every_steps=0", "eval.episodes=16"]

FAMILIES = {
    "ppo": ["algo=ppo", "env=CartPole-v1", "algo.num_steps=64", "total_timesteps=4096",
            "checkpoint.every_steps=512", "eval.every_steps=2048"],
    "cem": ["algo=cem", "env=CartPole-v1", "algo.population=8", "total_timesteps=12000",
            "checkpoint.every_steps=2000", "eval.every_steps=10000"],
    "ppo_kl": ["algo=ppo_kl", "env=CartPole-v1", "algo.num_steps=64", "total_timesteps=4096",
               "checkpoint.every_steps=512", "eval.every_steps=2048"],
    "trpo": ["algo=trpo", "env=Pendulum-v1", "algo.num_steps=256", "total_timesteps=4096",
             "checkpoint.every_steps=1024", "eval.every_steps=2048"],
    "dqn": ["algo=dqn", "env=CartPole-v1", "algo.learning_starts=500", "algo.buffer_size=3000",
            "algo.target_update_every=250", "total_timesteps=4000", "checkpoint.every_steps=500",
            "eval.every_steps=2000"],
    "dqn_one_hot_obs": ["algo=dqn", "env=Taxi-v4", "algo.learning_starts=500", "algo.buffer_size=1000",
                        "algo.target_update_every=250", "total_timesteps=3000",
                        "checkpoint.every_steps=1000", "eval.every_steps=1500"],
    "sac": ["algo=sac", "env=Pendulum-v1", "algo.learning_starts=200", "algo.batch_size=64",
            "network.hidden_sizes=[32,32]", "total_timesteps=1600", "checkpoint.every_steps=200",
            "eval.every_steps=800"],
    "a2c": ["algo=a2c", "env=CartPole-v1", "total_timesteps=3000", "checkpoint.every_steps=500",
            "eval.every_steps=2000"],
    "offpac": ["algo=offpac", "env=CartPole-v1", "total_timesteps=3000", "checkpoint.every_steps=500",
               "eval.every_steps=2000"],
    "npg": ["algo=npg", "env=CartPole-v1", "algo.num_steps=256", "total_timesteps=4096",
            "checkpoint.every_steps=1024", "eval.every_steps=2048"],
    "reinforce": ["algo=reinforce", "env=CartPole-v1", "total_timesteps=6000", "checkpoint.every_steps=1000",
                  "eval.every_steps=3000"],
    "td3": ["algo=td3", "env=Pendulum-v1", "algo.learning_starts=200", "algo.batch_size=64",
            "network.hidden_sizes=[32,32]", "total_timesteps=1600", "checkpoint.every_steps=200",
            "eval.every_steps=800"],
    "ddpg": ["algo=ddpg", "env=Pendulum-v1", "algo.learning_starts=200", "algo.batch_size=64",
             "network.hidden_sizes=[32,32]", "total_timesteps=1600", "checkpoint.every_steps=200",
             "eval.every_steps=800"],
    "sarsa": ["algo=sarsa", "env=CartPole-v1", "total_timesteps=4000", "checkpoint.every_steps=500",
              "eval.every_steps=2000"],
    "rlhf": ["algo=rlhf", "env=CartPole-v1", "total_timesteps=4096", "checkpoint.every_steps=512",
             "eval.every_steps=2048"],
    "bc": ["algo=bc", "env=InvertedDoublePendulum-v4", f"algo.expert={EXPERT}", "algo.expert_episodes=2",
           "algo.epochs=6", "checkpoint.every_steps=2000", "eval.every_steps=0"],
    "dagger": ["algo=dagger", "env=InvertedDoublePendulum-v4", f"algo.expert={EXPERT}", "algo.expert_episodes=1",
               "algo.epochs=2", "algo.rounds=3", "algo.episodes_per_round=1", "checkpoint.every_steps=1000",
               "eval.every_steps=0"],
    "ppo_lm": [*LM, "algo=ppo_lm", "algo.prompts_per_batch=32", "total_timesteps=3200", "checkpoint.every_steps=640"],
    "grpo": [*LM, "algo=grpo", "algo.prompts_per_batch=8", "total_timesteps=3200", "checkpoint.every_steps=640"],
    "ppo_continuous": ["algo=ppo", "env=Pendulum-v1", "algo.num_steps=64", "total_timesteps=4096",
                       "checkpoint.every_steps=512", "eval.every_steps=2048"],
    # Dict observations (goal-conditioned: observation, achieved and desired goal), flattened.
    "sac_dict_obs": ["algo=sac", "env=PointMaze_UMaze-v3", "env.imports=[gymnasium_robotics]",
                     "algo.learning_starts=200", "algo.batch_size=64",
                     "network.hidden_sizes=[32,32]", "total_timesteps=1000",
                     "checkpoint.every_steps=200", "eval.every_steps=500",
                     "eval.max_episode_steps=50"],
    # Running observation and return statistics on a MuJoCo env with terminations.
    "ppo_mujoco_normalize": ["algo=ppo", "env=Hopper-v4", "env.normalize_obs=true",
                             "env.normalize_reward=true", "algo.num_steps=64",
                             "algo.num_minibatches=4", "algo.num_epochs=2", "total_timesteps=2048",
                             "checkpoint.every_steps=512", "eval.every_steps=1024",
                             "eval.max_episode_steps=100"],
}
PACKAGES = {"sac_dict_obs": "gymnasium_robotics"}
"""The env package a case needs beyond rlrun's dependencies (installed by the test extra)."""


def run(args: list[str], run_dir: Path) -> subprocess.Popen:
    env = {**os.environ, "WANDB_MODE": "offline"}
    return subprocess.Popen([RLRUN, *args, *COMMON, f"hydra.run.dir={run_dir}"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def assert_resumed_exactly(args: list[str], tmp_path: Path) -> None:
    """A run SIGKILLed after its first checkpoint and resumed by the same command ends with the
    modules and generator states of an uninterrupted run."""
    straight = run(args, tmp_path / "straight")
    killed = run(args, tmp_path / "killed")
    first = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.time() + 120
    while not first.exists() and killed.poll() is None and time.time() < deadline:
        time.sleep(0.05)
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    stopped_at = load_checkpoint(first)["global_step"]
    resumed = run(args, tmp_path / "killed")  # the same command in the same dir resumes
    assert resumed.wait(timeout=300) == 0, resumed.stderr.read()
    assert straight.wait(timeout=300) == 0, straight.stderr.read()
    a = load_checkpoint(tmp_path / "straight" / "checkpoints" / "last.pt")
    b = load_checkpoint(first)
    assert 0 < stopped_at < a["global_step"] == b["global_step"]
    assert_same(a["modules"], b["modules"])
    assert_same(a["rng"], b["rng"])


@pytest.mark.slow
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_killed_and_resumed_run_equals_uninterrupted(tmp_path, family):
    if family in PACKAGES:
        pytest.importorskip(PACKAGES[family])
    assert_resumed_exactly(FAMILIES[family], tmp_path)


def test_every_registered_algorithm_has_a_case():
    from rlrun.registry import algorithms

    covered = {arg.partition("=")[2] for args in FAMILIES.values() for arg in args if arg.startswith("algo=")}
    assert covered == set(algorithms()), "add the missing algorithms to FAMILIES"
