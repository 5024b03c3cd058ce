"""Deep Q-Network (Mnih et al. 2015) with the Double DQN target (van Hasselt et al. 2016).

Follows book ch. 2: the Q-learning target y = r + γ max_a' Q'(s', a') (eq. 2.3) regressed with
a semi-gradient TD loss (eq. 2.5/2.6) on minibatches (ch. 2.2) drawn uniformly from a replay
buffer (ch. 2.3), against a target network Q' copied every `target_update_every` env steps
(Alg. 2.2) or Polyak-averaged after every gradient step (ch. 2.6, eq. 2.8, Alg. 2.3, with
τ = 1 - ς); `double_q` lets the online network pick the next action and the target network
value it (ch. 2.8, Alg. 2.6 in its Double DQN form). Behaviour is ε-greedy (ch. 2.1) with ε
annealed linearly over `exploration_fraction` of the budget, then held at `eps_end`.

The TD loss and the update are here; the loop is the replay loop of DDPG, TD3 and SAC
(`rlrun.algos._offpolicy`), driven by `train`: minibatches are drawn with its seeded generator. Every schedule (ε, learning starts, training phases, target
copies) is a function of the global env step, so a resumed run continues them exactly; the
replay buffer is written beside each checkpoint (`checkpoints/replay.pt`).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from rlrun.algos._offpolicy import ReplayLoop
from rlrun.algos._td_control import (
    make_policy,
    require_discrete_actions,
    td_step,
)
from rlrun.algos.configs import DQNConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import TrainConfig
from rlrun.data.replay import ReplayBatch
from rlrun.envs.factory import VecEnv
from rlrun.networks import numpy_acting
from rlrun.networks.q import QNetwork
from rlrun.ops.schedule import crossed
from rlrun.ops.td import (
    double_q_target,
    epsilon_greedy,
    epsilon_greedy_numpy,
    q_learning_target,
    taken,
    td_loss,
)
from rlrun.run.facade import Run, Stateful, TrainResult
from rlrun.training.optim import make_optimizer
from rlrun.training.targets import TargetSync


def dqn_loss(
    q_taken: Tensor,
    next_q: Tensor,
    rewards: Tensor,
    terminations: Tensor,
    gamma: float,
    kind: str,
    next_q_online: Tensor | None = None,
) -> Tensor:
    """TD loss (`kind`: huber or mse) of Q(s, a) (`q_taken`, [B]) to the Q-learning target
    y = r + γ (1 - terminated) max_a' Q'(s', a') (eq. 2.3) of the target network's `next_q`
    [B, A]; with the online network's `next_q_online` [B, A], to the Double DQN target, where the
    online network picks a' and the target network values it (ch. 2.8)."""
    if next_q_online is None:
        targets = q_learning_target(rewards, next_q, terminations, gamma)
    else:
        targets = double_q_target(rewards, next_q_online, next_q, terminations, gamma)
    return td_loss(q_taken, targets, kind)


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


class DQNLearner:
    """The Q-network with its target copy, acting ε-greedily, for the shared replay loop."""

    def __init__(self, cfg: TrainConfig, run: Run, envs: VecEnv) -> None:
        self.algo: DQNConfig = cfg.algo
        self.total_timesteps = cfg.total_timesteps
        obs_space, action_space = envs.single_observation_space, envs.single_action_space
        self.policy = make_policy(cfg, obs_space, action_space).to(run.device)
        self.target_network = make_policy(cfg, obs_space, action_space).to(run.device).requires_grad_(False)
        self.target_sync = TargetSync(self.target_network, self.policy)
        self.target_sync.hard()
        self.optimizer = make_optimizer(self.policy.parameters(), cfg.optimizer)
        self.optimizers = [self.optimizer]
        self.explore = exploration_policy(self.policy, run, envs.num_envs)
        self.epsilon = self.algo.epsilon(0, cfg.total_timesteps)

    def tracked(self) -> dict[str, Stateful]:
        return {"q_network": self.policy, "target_network": self.target_network, "optimizer": self.optimizer}

    def act(self, obs: np.ndarray, global_step: int) -> tuple[np.ndarray, np.ndarray]:
        self.epsilon = self.algo.epsilon(global_step, self.total_timesteps)
        actions = self.explore(obs, self.epsilon)
        return actions, actions

    def end_episodes(self, ended: np.ndarray) -> None:
        """ε-greedy keeps no per-episode state."""

    def after_env_step(self, previous: int, global_step: int) -> None:
        if self.algo.tau == 1.0 and crossed(previous, global_step, self.algo.target_update_every):
            self.target_sync.hard()

    def update(self, batch: ReplayBatch) -> dict[str, Tensor]:
        """One semi-gradient step on `batch` (eq. 2.6), then the Polyak target update when τ < 1."""
        algo = self.algo
        with torch.no_grad():
            next_q = self.target_network(batch.next_obs)
            next_q_online = self.policy(batch.next_obs) if algo.double_q else None
        q_taken = taken(self.policy(batch.obs), batch.actions)
        loss = dqn_loss(q_taken, next_q, batch.rewards, batch.terminations, algo.gamma, algo.loss, next_q_online)
        stats = td_step(self.optimizer, loss, q_taken, algo.max_grad_norm)
        if self.algo.tau < 1.0:
            self.target_sync.soft(self.algo.tau)
        return stats

    def log_values(self) -> dict[str, float]:
        return {"train/epsilon": self.epsilon, "train/lr": self.optimizer.param_groups[0]["lr"]}


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    loop = ReplayLoop(cfg, run)
    learner = DQNLearner(cfg, run, loop.envs)
    for batch in loop.batches(learner):
        loop.record(learner.update(batch))
    return loop.finish(learner.policy)


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
