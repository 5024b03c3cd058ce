"""The config dataclasses of rlrun's algorithms: one per `algo=` choice (its `name` default is
the choice), built from the blocks of `mixins` and the bases a family shares. They import no
torch and no training code, so that composing a config (`rlrun --help`, `--cfg job`) loads none;
each algorithm's module (`rlrun/algos/<name>.py`) holds its loss, its loop and its `SPEC`, whose
`config` is its class here (the registry reads the `algo=` choices from this package).

- `mixins`: the blocks several families share (discount, rollout, GAE, actor-critic loss, replay).
- `on_policy`: PPO, PPO-KL, RLHF, A2C, Off-PAC, REINFORCE, NPG, TRPO, CEM.
- `off_policy`: DDPG, TD3, SAC, DQN, SARSA.
- `imitation`: BC, DAgger.
- `lm`: PPO-LM, GRPO.
"""

from __future__ import annotations

from rlrun.algos.configs.imitation import BCConfig, DAggerConfig, ImitationConfig
from rlrun.algos.configs.lm import GRPOConfig, LMConfig, PPOLMConfig
from rlrun.algos.configs.mixins import (
    GAE,
    ActorCriticLoss,
    Discounted,
    ReplaySettings,
    Rollout,
    check_replay,
)
from rlrun.algos.configs.off_policy import (
    TD_LOSSES,
    DDPGConfig,
    DeterministicConfig,
    DQNConfig,
    OffPolicyConfig,
    PolyakTargets,
    SACConfig,
    SarsaConfig,
    TD3Config,
    TDControlConfig,
)
from rlrun.algos.configs.on_policy import (
    FVP_KINDS,
    A2CConfig,
    BehaviourPolicy,
    CEMConfig,
    ClippedSurrogate,
    MinibatchEpochs,
    NaturalPGConfig,
    NPGConfig,
    OffPACConfig,
    PPOConfig,
    PPOFamilyConfig,
    PPOKLConfig,
    ReinforceConfig,
    RLHFConfig,
    TRPOConfig,
)

__all__ = [
    "FVP_KINDS",
    "GAE",
    "TD_LOSSES",
    "A2CConfig",
    "ActorCriticLoss",
    "BCConfig",
    "BehaviourPolicy",
    "CEMConfig",
    "ClippedSurrogate",
    "DAggerConfig",
    "DDPGConfig",
    "DQNConfig",
    "DeterministicConfig",
    "Discounted",
    "GRPOConfig",
    "ImitationConfig",
    "LMConfig",
    "MinibatchEpochs",
    "NPGConfig",
    "NaturalPGConfig",
    "OffPACConfig",
    "OffPolicyConfig",
    "PPOConfig",
    "PPOFamilyConfig",
    "PPOKLConfig",
    "PPOLMConfig",
    "PolyakTargets",
    "RLHFConfig",
    "ReinforceConfig",
    "ReplaySettings",
    "Rollout",
    "SACConfig",
    "SarsaConfig",
    "TD3Config",
    "TDControlConfig",
    "TRPOConfig",
    "check_replay",
]
