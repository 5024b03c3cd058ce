"""Twin Delayed DDPG (Fujimoto et al. 2018).

Follows book ch. 10 (Alg. 10.1) and the lecture's "Twin delayed DDPG: TD3" box (Algorithm 1):
DDPG (`rlrun.algos.ddpg`, book Alg. 9.4) with three
changes against Q overestimation:
- twin critics Q_ψ1, Q_ψ2 trained on one target y = r + γ (1 - terminated) min_i Q_ψi'(s', ã),
  both from the target critics as in the lecture's box (book §10.2);
- target policy smoothing ã = clip(μ_θ'(s') + clip(N(0, σ̃), -c, c), -1, 1) (book eq. 10.1),
  with σ̃ = `policy_noise` and c = `noise_clip` in half action ranges;
- delayed updates: the actor (on Q_ψ1 only) and all target networks are updated once every
  `policy_delay` critic updates (book §10.4).
Exploration adds Gaussian noise (`noise_std`) to μ_θ(s), as in the paper.
The losses and the update are here; the replay loop is `_offpolicy`'s, driven by `train`; the
actor, critics, target copies and noise are `_deterministic`'s `DeterministicLearner`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from rlrun.algos._deterministic import DeterministicLearner, make_policy
from rlrun.algos._offpolicy import ReplayLoop, gradient_step, require_continuous_actions
from rlrun.algos.configs import TD3Config
from rlrun.algos.spec import AlgoSpec
from rlrun.config import TrainConfig
from rlrun.data.replay import ReplayBatch
from rlrun.ops.td import critic_regression_loss, td_target
from rlrun.run.facade import Run, TrainResult

check_spaces = require_continuous_actions("td3")


def smoothed(actions: Tensor, noise_std: float, noise_clip: float) -> Tensor:
    """Target policy smoothing: clip(a + clip(N(0, σ̃²), -c, c), -1, 1) (book eq. 10.1), with
    draws from torch's global generator; `actions` unchanged when σ̃ = 0."""
    if noise_std <= 0:
        return actions
    noise = (torch.randn_like(actions) * noise_std).clamp_(-noise_clip, noise_clip)
    return (actions + noise).clamp_(-1.0, 1.0)


def critic_loss(q: Tensor, next_q: Tensor, rewards: Tensor, terminations: Tensor, gamma: float) -> Tensor:
    """Both critics' squared error (`q`, [2, B]) to the one target y = r + γ (1 - terminated) ·
    min_i Q_ψi'(s', ã) (`next_q`, [2, B], from the target networks without gradient; §10.2)."""
    return critic_regression_loss(q, td_target(rewards, next_q.min(0).values, terminations, gamma))


def actor_loss(q: Tensor) -> Tensor:
    """-mean Q_ψ1(s, μ_θ(s)) (`q`, [B]), on the first critic only (Alg. 10.1)."""
    return -q.mean()


def update(learner: DeterministicLearner, batch: ReplayBatch, index: int) -> dict[str, Tensor]:
    """One step of Alg. 10.1 on `batch`: both critics toward the smoothed twin target; then,
    every `policy_delay`-th step (`index` counts earlier steps), the actor and the target networks."""
    algo: TD3Config = learner.algo
    with torch.no_grad():
        next_actions = smoothed(learner.actor_target(batch.next_obs), algo.policy_noise, algo.noise_clip)
        next_q = learner.critic_target(batch.next_obs, next_actions)
    q = learner.critic(batch.obs, batch.actions)
    loss = critic_loss(q, next_q, batch.rewards, batch.terminations, algo.gamma)
    stats = {"critic_loss": gradient_step(learner.critic_optimizer, loss), "q_mean": q.detach().mean()}
    if index % algo.policy_delay == 0:
        loss = actor_loss(learner.critic.first(batch.obs, learner.actor(batch.obs)))
        stats["actor_loss"] = gradient_step(learner.actor_optimizer, loss, learner.actor_params)
        learner.sync_targets()
    return stats


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    loop = ReplayLoop(cfg, run)
    learner = DeterministicLearner(cfg, loop.envs, run.device, num_critics=2)
    for batch in loop.batches(learner):
        loop.record(update(learner, batch, loop.updates))
    return loop.finish(learner.policy)


SPEC = AlgoSpec(
    name="td3", config=TD3Config, train=train, make_policy=make_policy, policy_key="actor",
    check_spaces=check_spaces,
    replay=True,
)
