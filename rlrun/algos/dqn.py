"""Deep Q-Network (Mnih et al. 2015) with the Double DQN target (van Hasselt et al. 2016).

Follows book ch. 2: the Q-learning target y = r + γ max_a' Q'(s', a') (eq. 2.3) regressed with
a semi-gradient TD loss (eq. 2.5/2.6) on minibatches (ch. 2.2) drawn uniformly from a replay
buffer (ch. 2.3), against a target network Q' copied every `target_update_every` env steps
(Alg. 2.2) or Polyak-averaged after every gradient step (ch. 2.6, eq. 2.8, Alg. 2.3, with
τ = 1 - ς); `double_q` lets the online network pick the next action and the target network
value it (ch. 2.8, Alg. 2.6 in its Double DQN form). Behaviour is ε-greedy (ch. 2.1) with ε
annealed linearly over `exploration_fraction` of the budget, then held at `eps_end`.

Every schedule (ε, learning starts, training phases, target copies) is a function of the
global env step, so a resumed run continues them exactly; the replay buffer is written
beside each checkpoint (`checkpoints/replay.pt`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from rlrun.algos._td_control import (
    TDControlConfig,
    make_policy,
    require_discrete_actions,
    td_update,
)
from rlrun.config import ConfigError, TrainConfig, check
from rlrun.data.replay import ReplayBatch, ReplayBuffer
from rlrun.envs.factory import VecEnv
from rlrun.networks import numpy_acting
from rlrun.networks.q import QNetwork
from rlrun.ops.optim import make_optimizer, scheduled_lr, set_lr
from rlrun.ops.schedule import crossed
from rlrun.ops.stats import MeanStats
from rlrun.ops.targets import TargetSync
from rlrun.ops.td import (
    double_q_target,
    epsilon_greedy,
    epsilon_greedy_numpy,
    q_learning_target,
)
from rlrun.registry import AlgoSpec
from rlrun.run import Run, SideFile, TrainResult


@dataclass
class DQNConfig(TDControlConfig):
    name: str = "dqn"
    buffer_size: int = 1_000_000
    """Replay buffer capacity (transitions; rounded down to a multiple of env.num_envs)."""
    learning_starts: int = 10_000
    """Env steps collected before the first gradient step."""
    batch_size: int = 32
    """Transitions per minibatch (count)."""
    train_every: int = 4
    """Env steps between training phases."""
    gradient_steps: int = 1
    """Gradient steps per training phase (count)."""
    target_update_every: int = 1000
    """Env steps between hard target-network copies (used when tau = 1)."""
    tau: float = 1.0
    """Polyak τ after each gradient step when < 1; 1 copies every target_update_every env steps."""
    double_q: bool = False
    """Double DQN target: the online net picks argmax_a' Q(s', a'), the target net values it."""

    def __post_init__(self) -> None:
        super().__post_init__()
        check(self.buffer_size >= 1, f"algo.buffer_size={self.buffer_size} must be >= 1")
        check(
            self.learning_starts >= 0, f"algo.learning_starts={self.learning_starts} must be >= 0"
        )
        check(self.batch_size >= 1, f"algo.batch_size={self.batch_size} must be >= 1")
        check(self.train_every >= 1, f"algo.train_every={self.train_every} must be >= 1")
        check(self.gradient_steps >= 1, f"algo.gradient_steps={self.gradient_steps} must be >= 1")
        check(
            self.target_update_every >= 1,
            f"algo.target_update_every={self.target_update_every} must be >= 1",
        )
        check(0.0 < self.tau <= 1.0, f"algo.tau={self.tau} must be in (0, 1]; 1 means hard copies")


def make_replay(capacity: int, envs: VecEnv, device: torch.device) -> ReplayBuffer:
    """Replay buffer for these envs; uint8 frames stored once (optimize_memory, frame_stack)."""
    if capacity < envs.num_envs:
        raise ConfigError(
            f"algo.buffer_size={capacity} is smaller than env.num_envs={envs.num_envs}; raise it"
        )
    obs_space = envs.single_observation_space
    frames = obs_space.dtype == np.uint8
    return ReplayBuffer(
        capacity,
        obs_space.shape,
        (),
        envs.num_envs,
        obs_dtype=torch.uint8 if frames else torch.float32,
        action_dtype=torch.int64,
        device=device,
        optimize_memory=frames,
        frame_stack=frames and len(obs_space.shape) == 3,
    )


def dqn_targets(
    q_network: QNetwork, target_network: QNetwork, batch: ReplayBatch, algo: DQNConfig
) -> torch.Tensor:
    """Q-learning targets (eq. 2.3) from the target network, or Double DQN targets."""
    with torch.no_grad():
        next_q_target = target_network(batch.next_obs)
        if algo.double_q:
            return double_q_target(
                batch.rewards, q_network(batch.next_obs), next_q_target, batch.dones, algo.gamma
            )
        return q_learning_target(batch.rewards, next_q_target, batch.dones, algo.gamma)


def exploration_policy(q_network: QNetwork, run: Run, num_envs: int) -> Callable[[np.ndarray, float], np.ndarray]:
    """ε-greedy actions for a batch of observations, computed in numpy where the Q-network
    allows (`numpy_acting`, see rlrun.networks.numpy_acting) and with torch otherwise."""
    if run.cfg.numpy_acting and numpy_acting.supports_q(q_network, num_envs):
        numpy_q = numpy_acting.NumpyQNetwork(q_network)
        return lambda obs, epsilon: epsilon_greedy_numpy(numpy_q(obs), epsilon)

    @torch.no_grad()
    def explore(obs: np.ndarray, epsilon: float) -> np.ndarray:
        return epsilon_greedy(q_network(torch.as_tensor(obs, device=run.device)), epsilon).cpu().numpy()

    return explore


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: DQNConfig = cfg.algo
    envs = run.make_envs(gamma=algo.gamma)
    obs_space, action_space = envs.single_observation_space, envs.single_action_space
    check_spaces(obs_space, action_space, cfg.env.id)
    q_network = make_policy(cfg, obs_space, action_space).to(run.device)
    target_network = make_policy(cfg, obs_space, action_space).to(run.device).requires_grad_(False)
    target_sync = TargetSync(target_network, q_network)
    target_sync.hard()
    optimizer = make_optimizer(q_network.parameters(), cfg.optimizer)
    buffer = make_replay(algo.buffer_size, envs, run.device)
    run.note_learning_starts(algo.learning_starts)
    run.track(
        q_network=q_network,
        target_network=target_network,
        optimizer=optimizer,
        envs=envs,
        replay=SideFile(buffer),
    )
    global_step = (
        run.restore()
    )  # minibatches and ε draws use the global torch RNG, restored with it
    stats = MeanStats()
    explore = exploration_policy(q_network, run, envs.num_envs)
    obs = envs.reset(seed=run.env_seed)
    while global_step < cfg.total_timesteps and not run.should_stop:
        epsilon = algo.epsilon(global_step, cfg.total_timesteps)
        actions = explore(obs, epsilon)
        step = envs.step(actions)
        run.record_episodes(step)
        buffer.add(obs, step.final_obs, actions, step.rewards, step.terminations, step.truncations)
        obs = step.obs
        previous, global_step = global_step, global_step + envs.num_envs

        if algo.tau == 1.0 and crossed(previous, global_step, algo.target_update_every):
            target_sync.hard()
        if global_step > algo.learning_starts and crossed(previous, global_step, algo.train_every):
            set_lr(optimizer, scheduled_lr(cfg.optimizer, global_step, cfg.total_timesteps))
            for _ in range(algo.gradient_steps):
                batch = buffer.sample(algo.batch_size)
                targets = dqn_targets(q_network, target_network, batch, algo)
                q_taken = q_network(batch.obs).gather(1, batch.actions.unsqueeze(1)).squeeze(1)
                stats.add(td_update(optimizer, q_taken, targets, algo.loss, algo.max_grad_norm))
                if algo.tau < 1.0:
                    target_sync.soft(algo.tau)
        if crossed(previous, global_step, algo.log_every) or global_step >= cfg.total_timesteps:
            lr = optimizer.param_groups[0]["lr"]
            run.log(
                {
                    **stats.pop(),
                    "train/epsilon": epsilon,
                    "train/lr": lr,
                    "train/buffer_size": float(len(buffer)),
                },
                global_step,
            )
        run.maybe_evaluate(q_network, global_step)
        run.maybe_checkpoint(global_step)
    return run.finish(q_network, global_step)


check_spaces = require_discrete_actions("dqn")

SPEC = AlgoSpec(
    name="dqn",
    config=DQNConfig,
    train=train,
    make_policy=make_policy,
    policy_key="q_network",
    check_spaces=check_spaces,
    replay=True,
)
