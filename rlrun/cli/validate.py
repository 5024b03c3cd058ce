"""Checks of a composed training config that reach beyond its values: the env builds and the
algorithm can act in its spaces, each logger that is on is installed (and reachable), the
callbacks can be made, and `compile=true` has an algorithm and a compiler to use."""

from __future__ import annotations

import shutil

from rlrun.callbacks import check_callbacks
from rlrun.config import ConfigError, LoggerConfig, TrainConfig
from rlrun.extras import require
from rlrun.registry import AlgoSpec, algorithms

CXX_COMPILERS = ("g++", "c++", "clang++")
"""C++ compilers torch.compile's inductor can build its kernels with."""
LOGGER_EXTRAS = ("tensorboard", "wandb", "mlflow")
"""The loggers that need a package of their own: each key `logger.<name>`, its module and its
extra share that name."""


def validate_train(cfg: TrainConfig) -> None:
    """Checks that span groups: the env exists and builds, and the algorithm can act in it."""
    from rlrun.envs.factory import env_spaces

    check_loggers(cfg.logger)
    check_callbacks(cfg.callbacks)
    spec = algorithms()[cfg.algo.name]
    if cfg.compile:
        check_compile(spec)
    if spec.check_task is not None:  # an in-process task (env=lm), not a Gymnasium env
        spec.check_task(cfg)
        return
    obs_space, action_space = env_spaces(cfg.env)
    if spec.check_spaces is not None:
        spec.check_spaces(obs_space, action_space, cfg.env.id)
    if spec.replay and (cfg.env.normalize_obs or cfg.env.normalize_reward):
        keys = [
            f"env.{key}=false"
            for key in ("normalize_obs", "normalize_reward")
            if getattr(cfg.env, key)
        ]
        raise ConfigError(
            f"algo={spec.name} learns from a replay buffer, which would hold transitions "
            f"normalised by statistics that keep moving; set {' '.join(keys)} (its presets do)"
        )


def check_loggers(cfg: LoggerConfig) -> None:
    """Each logger that is on has its package (an extra) installed; with `on_failure=fail`, the
    remote ones (wandb online, an MLflow server) answer within seconds."""
    from rlrun.tracking.check import unreachable

    for name in LOGGER_EXTRAS:
        if getattr(cfg, name):
            require(name, f"logger.{name}=true")
    if cfg.on_failure == "fail":
        for problem in unreachable(cfg).values():
            raise ConfigError(f"{problem}; or train without it: logger.on_failure=continue")


def check_compile(spec: AlgoSpec) -> None:
    """`compile=true` needs an algorithm that uses it and a C++ compiler for torch.compile."""
    if not spec.compiles:
        users = ", ".join(name for name, other in algorithms().items() if other.compiles)
        raise ConfigError(
            f"compile=true applies to algo={users}; algo={spec.name} has no minibatch loss to "
            "compile: drop compile=true"
        )
    if not any(shutil.which(compiler) for compiler in CXX_COMPILERS):
        raise ConfigError(
            "compile=true needs a C++ compiler (g++ or clang++) on the PATH for torch.compile: "
            "install one (e.g. apt install g++) or drop compile=true"
        )
