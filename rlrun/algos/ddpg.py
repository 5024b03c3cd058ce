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
The replay loop (random warm-up, update schedule, checkpointed buffer) is in `_offpolicy`; the
config, noise and update in `_deterministic`, whose `DeterministicLearner` also carries TD3's
twin critics, target smoothing and delayed updates (book ch. 10), switched off here and on in
`rlrun.algos.td3`.
"""

from __future__ import annotations

from rlrun.algos._deterministic import DeterministicLearner, make_policy
from rlrun.algos._offpolicy import require_continuous_actions, train_off_policy
from rlrun.algos.configs import DDPGConfig
from rlrun.config import TrainConfig
from rlrun.envs.factory import VecEnv
from rlrun.registry import AlgoSpec
from rlrun.run import Run, TrainResult

check_spaces = require_continuous_actions("ddpg")


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    def make_learner(envs: VecEnv) -> DeterministicLearner:
        return DeterministicLearner(cfg, envs, run.device, policy_delay=cfg.algo.policy_delay)

    return train_off_policy(cfg, run, make_learner)


SPEC = AlgoSpec(
    name="ddpg", config=DDPGConfig, train=train, make_policy=make_policy, policy_key="actor",
    check_spaces=check_spaces,
    replay=True,
)
