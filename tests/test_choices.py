"""A group choice on the command line always wins: the optimizer and the torso each algorithm
actually builds on its own training path (stopped at its first optimizer), with every family
preset, and the start panel's account of the preset values set in the chosen group."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from rlrun.cli import train_command as cli
from rlrun.cli.choices import choice_rows, default_choice
from rlrun.cli.compose import CONF_DIR, compose_checked
from rlrun.config import ConfigError
from rlrun.export.rebuild import load_policy
from rlrun.networks.cnn import NatureCNN
from rlrun.networks.lm import TransformerTorso
from rlrun.networks.mlp import MLP
from rlrun.registry import algorithms
from rlrun.run.facade import Launch, Run
from rlrun.training.optim import FlatAdam, FlatOptimizer

CONF = Path(CONF_DIR)
BUILT = {"adam": FlatAdam, "adamw": FlatAdam, "rmsprop": torch.optim.RMSprop, "sgd": torch.optim.SGD}
"""The optimizer class each `optimizer=<name>` builds (adamw: FlatAdam with decoupled decay)."""
OWN_OPTIMIZER = {"a2c": "rmsprop", "offpac": "rmsprop"}
"""The optimizer an algorithm picks when none is typed (adam otherwise)."""
EXPERT = Path(__file__).resolve().parent / "data" / "idp_ppo_expert.pt"
FAMILY_ENV = {"classic": "CartPole-v1", "mujoco": "HalfCheetah-v4", "lm": "lm"}
"""The env each family's presets are tried on (continuous-only algorithms: Pendulum-v1)."""
ENV_OF = {"bc": "InvertedDoublePendulum-v4", "dagger": "InvertedDoublePendulum-v4"}
"""Imitation learns from the shipped expert, on its env."""
EXTRA = {
    "lm": ["network.width=16", "network.layers=1", "network.heads=2", "algo.pretrain_steps=1"],
    "bc": [f"algo.expert={EXPERT}", "algo.expert_episodes=1"],
    "dagger": [f"algo.expert={EXPERT}"],
}
"""What a case needs besides its algo and env."""


class _Built(Exception):
    """Raised once the first optimizer is built: training stops there."""


@pytest.fixture
def built(monkeypatch):
    """What the training path builds: its torso classes, then its first optimizer."""
    record: dict[str, list] = {"torsos": [], "optimizer": []}
    for torso in (MLP, NatureCNN, TransformerTorso):
        def init(self, *args, _init=torso.__init__, _torso=torso, **kwargs):
            record["torsos"].append(_torso)
            _init(self, *args, **kwargs)

        monkeypatch.setattr(torso, "__init__", init)
    flat_init = FlatOptimizer.__init__

    def optimizer_init(self, params, cfg):
        flat_init(self, params, cfg)
        record["optimizer"].append(self.optimizer)
        raise _Built

    monkeypatch.setattr(FlatOptimizer, "__init__", optimizer_init)
    return record


def _build(overrides: list[str], tmp_path: Path, record: dict) -> tuple[object, set[type]]:
    """The first optimizer and the torso classes `rlrun <overrides>` builds (composed and
    checked as the command line does: the CNN is picked for image observations)."""
    cli._setup()
    cfg = OmegaConf.to_object(compose_checked("train", ["logger.console=false", *overrides]))
    run = Run(cfg, tmp_path / "run", Launch(load_policy=load_policy))
    try:
        with pytest.raises(_Built):
            algorithms()[cfg.algo.name].train(cfg, run)
    finally:
        run.close()
    return record["optimizer"][0], set(record["torsos"])


def _assert_optimizer(instance: object, name: str) -> None:
    assert type(instance) is BUILT[name], (type(instance), name)
    if isinstance(instance, FlatAdam):
        assert instance.decoupled == (name == "adamw")


def _preset_algo(stem: str) -> str:
    return max((name for name in algorithms() if stem.startswith(f"{name}_")), key=len)


def _cases() -> list[tuple[str, str, str | None]]:
    """(algo, env, optimizer typed or None): every algorithm on an env of each family it has a
    preset for (Atari aside), untyped and with each optimizer other than its own typed."""
    pairs = sorted({(_preset_algo(p.stem), p.stem[len(_preset_algo(p.stem)) + 1:])
                    for p in (CONF / "preset").glob("*.yaml")})
    cases = []
    for algo, family in ((a, f) for a, f in pairs if f in FAMILY_ENV):
        env = ENV_OF.get(algo, "Pendulum-v1" if algo in ("ddpg", "td3", "sac") else FAMILY_ENV[family])
        own = OWN_OPTIMIZER.get(algo, "adam")
        cases += [(algo, env, None), *((algo, env, name) for name in BUILT if name != own)]
    return cases


@pytest.mark.slow
@pytest.mark.parametrize("algo, env, optimizer", _cases())
def test_the_chosen_optimizer_is_the_one_built(built, tmp_path, algo, env, optimizer):
    typed = [] if optimizer is None else [f"optimizer={optimizer}"]
    extra = EXTRA.get(algo, EXTRA.get(env, []))
    instance, torsos = _build([f"algo={algo}", f"env={env}", *typed, *extra], tmp_path, built)
    _assert_optimizer(instance, optimizer or OWN_OPTIMIZER.get(algo, "adam"))
    assert torsos == {TransformerTorso if env == "lm" else MLP}


def test_every_algorithm_and_optimizer_meet():
    cases = _cases()
    trained = {algo for algo, _, _ in cases}
    assert trained == set(algorithms()) - {"cem"}  # CEM has no gradient optimizer
    for algo in trained:
        chosen = {optimizer or OWN_OPTIMIZER.get(algo, "adam") for a, _, optimizer in cases if a == algo}
        assert len(chosen) >= 2, algo
    assert {optimizer for _, _, optimizer in cases} == {None, *BUILT}


@pytest.mark.parametrize("algo", ["dqn", "ppo"])
@pytest.mark.parametrize("optimizer", [None, "sgd"])
def test_atari_presets_build_the_cnn_and_keep_a_typed_optimizer(built, tmp_path, algo, optimizer):
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    typed = [] if optimizer is None else [f"optimizer={optimizer}"]
    small = ["env.num_envs=1", "algo.buffer_size=64" if algo == "dqn" else "algo.num_steps=8"]
    instance, torsos = _build([f"algo={algo}", "env=ALE/Pong-v5", *typed, *small], tmp_path, built)
    assert torsos == {NatureCNN}
    _assert_optimizer(instance, optimizer or "adam")


def test_a_typed_network_wins_over_the_atari_family(compose_cfg, atari_id):
    assert compose_cfg(["algo=dqn", f"env={atari_id}"]).network.name == "cnn"
    assert compose_cfg(["algo=dqn", f"env={atari_id}", "network=mlp"]).network.name == "mlp"


class _Frames(gym.Env):
    """Random 48x48 RGB frames, two actions, episodes of 8 steps."""

    observation_space = gym.spaces.Box(0, 255, (48, 48, 3), np.uint8)
    action_space = gym.spaces.Discrete(2)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self._t = 0
        return self.observation_space.sample(), {}

    def step(self, action):
        self._t += 1
        return self.observation_space.sample(), 0.0, False, self._t >= 8, {}


@pytest.fixture
def frames_id():
    gym.register("rlrun_test/Frames-v0", entry_point=_Frames)
    yield "rlrun_test/Frames-v0"
    del gym.registry["rlrun_test/Frames-v0"]


@pytest.mark.parametrize("algo", ["ppo", "a2c", "dqn"])
def test_image_observations_build_the_cnn_and_the_typed_optimizer(built, tmp_path, frames_id, algo):
    overrides = [f"algo={algo}", f"env={frames_id}", "optimizer=sgd", "algo.buffer_size=64" * (algo == "dqn")]
    instance, torsos = _build([o for o in overrides if o], tmp_path, built)
    assert torsos == {NatureCNN}
    _assert_optimizer(instance, "sgd")


def test_a_typed_network_is_kept_on_images(built, tmp_path, frames_id):
    """`network=mlp` typed is not replaced by the CNN: the MLP torso refuses the images."""
    cli._setup()
    cfg = OmegaConf.to_object(compose_checked("train", [f"env={frames_id}", "network=mlp",
                                                        "logger.console=false"]))
    assert cfg.network.name == "mlp"
    run = Run(cfg, tmp_path / "run")
    try:
        with pytest.raises(ConfigError, match="need network=cnn"):
            algorithms()["ppo"].train(cfg, run)
    finally:
        run.close()
    assert not built["torsos"] and not built["optimizer"]


def test_start_panel_rows_name_the_preset_values_in_the_chosen_group():
    presets = [CONF / "preset" / "dqn_classic.yaml"]
    choices = {"algo": "dqn", "optimizer": "sgd", "network": "mlp"}
    rows = dict(choice_rows(choices, presets, ["algo=dqn", "optimizer=sgd"], CONF))
    assert rows["optimizer"] == ("sgd (optimizer=sgd); preset dqn_classic sets lr=0.001 "
                                 "schedule=linear (eps=1e-08 not read by sgd), tuned with optimizer=adam")
    assert rows["network"] == "mlp; preset dqn_classic sets hidden_sizes=[256, 256] activation=relu init=default"
    rows = dict(choice_rows({**choices, "optimizer": "adam"}, presets, ["algo=dqn"], CONF))
    assert rows["optimizer"] == "adam; preset dqn_classic sets lr=0.001 eps=1e-08 schedule=linear"
    assert default_choice(CONF, "optimizer", "a2c") == "rmsprop"
    assert default_choice(CONF, "optimizer", "ppo") == "adam"
