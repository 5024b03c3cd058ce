"""Twin Delayed DDPG (Fujimoto et al. 2018).

Follows book ch. 10 (Alg. 10.1) and the lecture's "Twin delayed DDPG: TD3" box (Algorithm 1):
DDPG (`rlrun.algos.ddpg`, book Alg. 9.4; the shared learner in `_deterministic`) with three
changes against Q overestimation:
- twin critics Q_ψ1, Q_ψ2 trained on one target y = r + γ (1 - terminated) min_i Q_ψi'(s', ã),
  both from the target critics as in the lecture's box (book §10.2);
- target policy smoothing ã = clip(μ_θ'(s') + clip(N(0, σ̃), -c, c), -1, 1) (book eq. 10.1),
  with σ̃ = `policy_noise` and c = `noise_clip` in half action ranges;
- delayed updates: the actor (on Q_ψ1 only) and all target networks are updated once every
  `policy_delay` critic updates (book §10.4).
Exploration adds Gaussian noise (`noise_std`) to μ_θ(s), as in the paper.
"""

from __future__ import annotations

from rlrun.algos._deterministic import DeterministicLearner, make_policy
from rlrun.algos._offpolicy import require_continuous_actions, train_off_policy
from rlrun.algos.configs import TD3Config
from rlrun.config import TrainConfig
from rlrun.envs.factory import VecEnv
from rlrun.registry import AlgoSpec
from rlrun.run import Run, TrainResult

check_spaces = require_continuous_actions("td3")


def train(cfg: TrainConfig, run: Run) -> TrainResult:
    algo: TD3Config = cfg.algo

    def make_learner(envs: VecEnv) -> DeterministicLearner:
        return DeterministicLearner(
            cfg, envs, run.device, num_critics=2,
            policy_noise=algo.policy_noise, noise_clip=algo.noise_clip, policy_delay=algo.policy_delay,
        )

    return train_off_policy(cfg, run, make_learner)


SPEC = AlgoSpec(
    name="td3", config=TD3Config, train=train, make_policy=make_policy, policy_key="actor",
    check_spaces=check_spaces,
    replay=True,
)
