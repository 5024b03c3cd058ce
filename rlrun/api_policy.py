"""The policy of a run dir or checkpoint, from Python: `rlrun.load(path)` gives a `Policy` that
acts on observations and evaluates on its env (`rlrun.api` has the rest of the Python API).
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import gymnasium as gym
    import numpy as np

    from rlrun.config import TrainConfig
    from rlrun.export.rebuild import LoadedPolicy
    from rlrun.run.eval_episodes import EvalResult


def load(
    path: str | Path, env: Callable[..., gym.Env] | None = None, device: str = "auto"
) -> Policy:
    """The policy of a run dir (its `checkpoints/last.pt`) or checkpoint file.

    Args:
        path: Run dir or checkpoint file.
        env: The callable that made the env of a run trained with `rlrun.train(env=<callable>)`
            (such a checkpoint cannot rebuild it); None for an env the config makes.
        device: auto (cuda when available), cpu or cuda.

    Raises:
        CheckpointError: a missing, unreadable or foreign checkpoint, or `env` given for a
            checkpoint whose config makes its env (or not given for one made in Python).
    """
    from rlrun.envs.python_env import check_callable, registered
    from rlrun.export.rebuild import load_policy
    from rlrun.run.facade import resolve_device

    if env is None:
        return Policy(load_policy(path, resolve_device(device)))
    check_callable(env)
    with registered(python_env_id(path, "load it with rlrun.load('{run}')"), env):
        return Policy(load_policy(path, resolve_device(device)), env)


class Policy:
    """A checkpoint's policy (`rlrun.load`): act on observations, evaluate on its env."""

    def __init__(self, loaded: LoadedPolicy, make_env: Callable[..., gym.Env] | None = None) -> None:
        from rlrun.envs.factory import env_spaces

        self._loaded = loaded
        self._make_env = make_env
        self.network = loaded.policy
        """The acting network (`act(obs_tensor, deterministic)`), in eval mode."""
        self.device = next(loaded.policy.parameters()).device
        """Where the network's parameters are."""
        self.config: TrainConfig = loaded.train_cfg
        """The typed config the policy was trained with."""
        self.checkpoint: Path = loaded.path
        """The checkpoint file."""
        self.global_step: int = loaded.global_step
        """Env steps trained when the checkpoint was written."""
        with self._env():
            spaces = env_spaces(self.config.env)
        self.observation_space: gym.Space = spaces[0]
        """Observations the policy takes, as rlrun's envs give them: the env's own for a Box,
        one-hot vectors for discrete ones, channels-first images."""
        self.action_space: gym.Space = spaces[1]
        """Actions the policy gives."""
        self._normalizer = loaded.obs_normalizer(self.observation_space)

    def _env(self) -> AbstractContextManager[None]:
        """The block in which the env's id makes the Python env given to `load`, if any."""
        from rlrun.envs.python_env import registered

        if self._make_env is None:
            return nullcontext()
        return registered(self.config.env.id, self._make_env)

    def act(self, obs: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """The action for one observation, or the actions of a batch of them (a leading axis),
        normalised with the training statistics as in training; `deterministic`: the mean or
        argmax action (false: a sample)."""
        import gymnasium as gym
        import numpy as np
        import torch

        batch = np.asarray(obs)
        shape = self.observation_space.shape
        single = batch.shape == shape
        if single:
            batch = batch[None]
        elif batch.shape[1:] != shape:
            raise ValueError(f"act takes an observation of shape {shape} or a batch of shape "
                             f"(n, {', '.join(map(str, shape))}), not {batch.shape}")
        if self._normalizer is not None:
            batch = self._normalizer(batch, update=False)
        elif batch.dtype == np.float64:
            batch = batch.astype(np.float32)
        with torch.inference_mode():
            actions = self.network.act(torch.as_tensor(batch, device=self.device), deterministic)
        actions = actions.cpu().numpy()
        if isinstance(self.action_space, gym.spaces.Box):
            actions = np.clip(actions, self.action_space.low, self.action_space.high)
        return actions[0] if single else actions

    def evaluate(
        self, episodes: int = 10, deterministic: bool = True, seed: int | None = None,
        num_envs: int | None = None,
    ) -> EvalResult:
        """Evaluate on fresh envs of the training env with the run's protocol (`rlrun-eval`'s):
        `episodes` episodes over `num_envs` envs (default: the run's `eval.num_envs`), seeded with
        `seed` (default: the run's) + `eval.seed_offset`. With the run's `eval.episodes`, this is
        its final evaluation again. Returns the raw returns (`.mean`, `.std`, `.iqm`, `.returns`,
        `.lengths`)."""
        from rlrun.config import EvalConfig
        from rlrun.run.eval_episodes import evaluate

        cfg = self.config
        protocol = EvalConfig(episodes=episodes, num_envs=num_envs or cfg.eval.num_envs,
                              deterministic=deterministic)  # refuses bad values in one line
        with self._env():
            envs = self._loaded.eval_envs(protocol.num_envs,
                                          max_episode_steps=cfg.eval.max_episode_steps)
            try:
                return evaluate(self.network, envs, protocol.episodes,
                                (cfg.seed if seed is None else seed) + cfg.eval.seed_offset,
                                self.device, protocol.deterministic)
            finally:
                envs.close()


def python_env_id(path: str | Path, fix: str) -> str:
    """The env id of the checkpoint at `path` (a run dir or file), whose env a Python callable
    made; refused, with `fix` (`{run}` filled in), when its config makes its env."""
    from omegaconf import OmegaConf

    from rlrun.run.checkpoint_files import (
        CheckpointError,
        load_checkpoint,
        resolve_checkpoint,
        run_dir_of,
    )

    checkpoint = resolve_checkpoint(path)
    state = load_checkpoint(checkpoint)
    env_id = OmegaConf.create(state["config"]).env.id
    if state.get("python_env") is None:
        raise CheckpointError(
            f"{checkpoint} was trained on env={env_id}, which its config makes, not on an env "
            f"made in Python: drop env= and {fix.format(run=run_dir_of(checkpoint))}"
        )
    return env_id
