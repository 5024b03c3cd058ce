"""Deep Deterministic Policy Gradient (Lillicrap et al. 2016).

Follows book ch. 9 (§9.6, Alg. 9.4) and the lecture's "Deep deterministic policy gradient:
DDPG" box (Algorithm 1):
- deterministic actor μ_θ(s) = tanh(MLP(s)), scaled to the env's action bounds when acting;
- critic Q_ψ(s, a) regressed on y = r + γ (1 - terminated) Q_ψ'(s', μ_θ'(s')), bootstrapping
  through truncation from the real final observation, never through termination;
- actor ascends ∇_θ Q_ψ(s, μ_θ(s)) (the deterministic policy gradient, book §9.2);
- target networks ψ', θ' Polyak-averaged with `tau` after every update (book §2.6);
- behaviour policy β = μ_θ(s) + noise: Gaussian (the book's recommendation, §9.6) or the
  Ornstein-Uhlenbeck process of the original paper, reset at episode ends.
The losses and the update are here; the replay loop (random warm-up, update schedule,
checkpointed buffer) is `_offpolicy`'s, driven by `train`; the actor, critic, their target
copies and the noise are `_deterministic`'s `DeterministicLearner`, which TD3 shares.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlrun.algos._deterministic import DeterministicLearner, make_policy
from rlrun.algos._offpolicy import ReplayLoop, gradient_step, require_continuous_actions
from rlrun.algos.configs import DDPGConfig
from rlrun.algos.spec import AlgoSpec
from rlrun.config import TrainConfig
from rlrun.data.replay import ReplayBatch
from rlrun.ops.td import critic_regression_loss, td_target
from rlrun.run.facade import Run, TrainResult

check_spaces = require_continuous_actions("ddpg")


def critic_loss(q: Tensor, next_q: Tensor, rewards: Tensor, terminations: Tensor, gamma: float) -> Tensor:
    """Squared error of the critic's Q_ψ(s, a) (`q`, [1, B]) to y = r + γ (1 - terminated) ·
    Q_ψ'(s', μ_θ'(s')) (`next_q`, [B], from the target networks without gradient; Alg. 9.4)."""
    return critic_regression_loss(q, td_target(rewards, next_q, terminations, gamma))


def actor_loss(q: Tensor) -> Tensor:
    """-mean Q_ψ(s, μ_θ(s)) (`q`, [B]): its gradient in θ is the deterministic policy gradient (§9.2)."""
    return -q.mean()


def update(learner: DeterministicLearner, batch: ReplayBatch, index: int) -> dict[str, Tensor]:
    """One step of Alg. 9.4 on `batch`: the critic toward its target; then, every
    `policy_delay`-th step (`index` counts earlier steps), the actor and the target networks."""
    algo: DDPGConfig = learner.algo
    with torch.no_grad():
        next_q = learner.critic_target(batch.next_obs, learner.actor_target(batch.next_obs))
    q = learner.critic(batch.obs, batch.actions)
    loss = critic_loss(q, next_q[0], batch.rewards, batch.terminations, algo.gamma)
    stats = {"critic_loss": gradient_step(learner.critic_optimizer, loss), "q_mean": q.detach().mean()}
    if index % algo.policy_delay == 0:
        loss = actor_loss(learner.critic.first(batch.obs, learner.actor(batch.obs)))
        stats["actor_loss"] = gradient_step(learner.actor_optimizer, loss, learner.actor_params)
        learner.sync_targets()
    return stats


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    loop = ReplayLoop(cfg, run)
    learner = DeterministicLearner(cfg, loop.envs, run.device, num_critics=1)
    for batch in loop.batches(learner):
        loop.record(update(learner, batch, loop.updates))
    return loop.finish(learner.policy)


SPEC = AlgoSpec(
    name="ddpg", config=DDPGConfig, train=train, make_policy=make_policy, policy_key="actor",
    check_spaces=check_spaces,
    replay=True,
)
