"""The one place where Gymnasium environments, wrappers and vector envs are built."""

from __future__ import annotations

import os
import sys
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache, partial
from pathlib import Path

import gymnasium as gym
import numpy as np

from rlrun.config import ConfigError, EnvConfig
from rlrun.envs.final_info import FinalInfo
from rlrun.envs.imports import UNKNOWN_ENV_HINT, first_line, load, registry_id
from rlrun.envs.normalize import ObsNormalizer, RewardNormalizer
from rlrun.envs.recording import EpisodeRecording
from rlrun.envs.vector import (
    EnvPoolVectorEnv,
    SerialVectorEnv,
    SubprocessVectorEnv,
    non_scalar_reward,
)
from rlrun.envs.wrappers import apply_wrappers, env_creator, rejected_keyword


@dataclass
class Step:
    """One vector step. Observations are normalised when the env normalises them.

    `final_obs` equals `obs` except in rows whose episode ended this step, where it holds
    the real last observation of that episode (for bootstrapping through truncation), while
    `obs` holds the first observation of the next episode.
    """

    obs: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray
    final_obs: np.ndarray
    episode_returns: np.ndarray
    """Raw (unnormalised) returns of the episodes that ended this step."""
    episode_lengths: np.ndarray
    """Lengths (env steps) of the episodes that ended this step."""
    episode_infos: dict[str, np.ndarray]
    """{info key: its value in the final info of each episode that ended this step, NaN where
    the info lacks a number}, for the keys of `logger.info_keys` that one of them reports."""


_NO_RETURNS = np.zeros(0, np.float64)
_NO_LENGTHS = np.zeros(0, np.int64)
_NO_INFOS: dict[str, np.ndarray] = {}  # shared by every step without ended episodes: never modified


class VecEnv:
    """Vector env (same-step autoreset) with vectorised normalisation and episode statistics."""

    def __init__(
        self,
        envs: SerialVectorEnv | SubprocessVectorEnv | EnvPoolVectorEnv,
        obs_normalizer: ObsNormalizer | None,
        reward_normalizer: RewardNormalizer | None,
        training: bool,
        final_info: FinalInfo | None = None,
    ) -> None:
        self.envs = envs
        self.final_info = final_info
        envs.info_keys = final_info.keys if final_info is not None else ()
        self.num_envs = envs.num_envs
        self.single_observation_space = envs.single_observation_space
        self.single_action_space = envs.single_action_space
        self.action_space = envs.action_space
        """Batched action space (seeded by Run) for uniformly random actions."""
        self.obs_normalizer = obs_normalizer
        self.reward_normalizer = reward_normalizer
        self.training = training
        space = self.single_action_space
        self._action_bounds = (space.low, space.high) if isinstance(space, gym.spaces.Box) else None
        self._returns = np.zeros(self.num_envs, np.float64)
        self._lengths = np.zeros(self.num_envs, np.int64)
        self._obs = np.zeros(0)
        self._pending_restore: dict | None = None
        self.notify: Callable[[str], None] = print
        """Where one-line notices go (Run points it at its logger)."""

    def _process(self, obs: np.ndarray, update: bool) -> np.ndarray:
        """Normalise (updating the statistics if asked) or cast float64 to float32."""
        if self.obs_normalizer is not None:
            return self.obs_normalizer(obs, update=update)
        return obs.astype(np.float32) if obs.dtype == np.float64 else obs

    def reset(self, seed: int | None = None) -> np.ndarray:
        """Start fresh episodes seeded with seed, seed+1, ... — or, right after
        `load_state_dict`, rebuild the checkpointed episodes exactly where they were."""
        if self._pending_restore is not None:
            state, self._pending_restore = self._pending_restore, None
            if self._restore(state):
                return self._obs
        obs = self.envs.reset(seed=seed)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        if self.reward_normalizer is not None:
            self.reward_normalizer.returns[:] = 0.0
        self._obs = self._process(obs, update=self.training)
        return self._obs

    def _restore(self, state: dict) -> bool:
        if not isinstance(self.envs, SerialVectorEnv):
            self.notify("Resume: envs of env.vectorization=async or env.backend=envpool cannot be rebuilt; "
                        "continuing with fresh episodes")
            return False
        mismatched = self.envs.restore(state["episodes"])
        if mismatched:
            self.notify(f"Resume: the episodes of envs {mismatched} could not be rebuilt by replay (the "
                        "simulator is not replayable, or an episode outgrew the action log); continuing "
                        "with fresh episodes")
            return False
        self._returns[:] = state["returns"].numpy()
        self._lengths[:] = state["lengths"].numpy()
        if self.reward_normalizer is not None:
            self.reward_normalizer.returns[:] = state["discounted_returns"].numpy()
        self._obs = state["obs"].numpy()
        return True

    def step(self, actions: np.ndarray) -> Step:
        if self._action_bounds is not None:
            low, high = self._action_bounds
            actions = np.minimum(np.maximum(actions, low), high)
        obs, rewards, terminations, truncations, final_rows, final_infos = self.envs.step(actions)
        ended = terminations | truncations
        self._returns += rewards
        self._lengths += 1
        processed = self._process(obs, update=self.training)
        final_obs = processed
        if final_rows:
            episode_returns = self._returns[ended]
            episode_lengths = self._lengths[ended]
            self._returns[ended] = 0.0
            self._lengths[ended] = 0
            raw_final = obs.copy()
            for i, row in final_rows.items():
                raw_final[i] = row
            final_obs = self._process(raw_final, update=False)
            episode_infos = (self.final_info.values(final_infos, np.flatnonzero(ended))
                             if final_infos and self.final_info is not None else _NO_INFOS)
        else:
            episode_returns, episode_lengths, episode_infos = _NO_RETURNS, _NO_LENGTHS, _NO_INFOS
        if self.reward_normalizer is not None and self.training:
            rewards = self.reward_normalizer(rewards, ended)
        self._obs = processed
        return Step(processed, rewards.astype(np.float32), terminations, truncations, final_obs,
                    episode_returns, episode_lengths, episode_infos)

    def state_dict(self) -> dict:
        """Normaliser statistics and the running episodes (tensors and plain data only)."""
        import torch  # here: building an env to read its spaces (`rlrun --cfg job`) needs no torch

        state: dict = {
            "returns": torch.as_tensor(self._returns.copy()),
            "lengths": torch.as_tensor(self._lengths.copy()),
            "obs": torch.as_tensor(np.array(self._obs)),
        }
        if isinstance(self.envs, SerialVectorEnv):
            state["episodes"] = self.envs.state_dict()
        if self.obs_normalizer is not None:
            state["obs_rms"] = self.obs_normalizer.rms.state_dict()
        if self.reward_normalizer is not None:
            state["return_rms"] = self.reward_normalizer.rms.state_dict()
            state["discounted_returns"] = torch.as_tensor(self.reward_normalizer.returns.copy())
        return state

    def load_state_dict(self, state: dict) -> None:
        """Restore normaliser statistics now, and the running episodes at the next `reset`."""
        if self.obs_normalizer is not None and "obs_rms" in state:
            self.obs_normalizer.rms.load_state_dict(state["obs_rms"])
        if self.reward_normalizer is not None and "return_rms" in state:
            self.reward_normalizer.rms.load_state_dict(state["return_rms"])
        if "episodes" in state or "obs" in state:
            self._pending_restore = state

    def close(self) -> None:
        self.envs.close()


FLAT_SPACES = (gym.spaces.Box, gym.spaces.Discrete, gym.spaces.MultiDiscrete, gym.spaces.MultiBinary)
"""Observation spaces (and leaves of Tuple/Dict spaces) that rlrun flattens into float vectors."""


def is_image(space: gym.Space) -> bool:
    """uint8 Box observations with three axes: frames for the CNN (channels first or last)."""
    return isinstance(space, gym.spaces.Box) and space.dtype == np.uint8 and len(space.shape) == 3


class OneHotBox(gym.spaces.Box):
    """The float32 vector that `adapt_observations` makes of a discrete space: one one-hot segment
    of `sizes[i]` entries per discrete part, in Gymnasium's flattening order (a replay buffer
    stores one index per segment)."""

    def __init__(self, sizes: tuple[int, ...]) -> None:
        super().__init__(0.0, 1.0, (sum(sizes),), np.float32)
        self.sizes = sizes


def one_hot_sizes(space: gym.Space) -> tuple[int, ...] | None:
    """Sizes of the one-hot segments that flattening makes of `space` when every part of it is
    Discrete or MultiDiscrete (Tuple/Dict of these too); None for any other space."""
    if isinstance(space, gym.spaces.Discrete):
        return (int(space.n),)
    if isinstance(space, gym.spaces.MultiDiscrete):
        return tuple(int(n) for n in space.nvec.flatten())
    if isinstance(space, gym.spaces.Tuple):
        parts = space.spaces
    elif isinstance(space, gym.spaces.Dict):
        parts = tuple(space.spaces.values())
    else:
        return None
    sizes = [one_hot_sizes(part) for part in parts]
    return None if not sizes or None in sizes else sum(sizes, ())


def _flattenable(space: gym.Space) -> bool:
    if isinstance(space, gym.spaces.Tuple):
        return all(_flattenable(part) for part in space.spaces)
    if isinstance(space, gym.spaces.Dict):
        return all(_flattenable(part) for part in space.spaces.values())
    return isinstance(space, FLAT_SPACES) and not is_image(space)


def adapt_observations(env: gym.Env) -> gym.Env:
    """`env` with observations a network takes: images channels first (uint8); everything else a
    float32 vector, with discrete parts one-hot (Discrete, MultiDiscrete, Tuple/Dict of these and Box);
    the space of a vector made only of one-hot parts is a `OneHotBox`."""
    space = env.observation_space
    if is_image(space):
        if space.shape[-1] in (1, 3, 4) and space.shape[0] not in (1, 3, 4):  # (H, W, C) -> (C, H, W)
            moved = gym.spaces.Box(np.moveaxis(space.low, -1, 0), np.moveaxis(space.high, -1, 0), dtype=np.uint8)
            env = gym.wrappers.TransformObservation(env, lambda obs: np.moveaxis(obs, -1, 0), moved)
        return env
    if not _flattenable(space):
        raise ConfigError(
            f"observation space {space} is not supported: rlrun trains on Box, Discrete, MultiDiscrete and "
            "MultiBinary observations, Tuple/Dict spaces of these, and uint8 images"
        )
    vector = isinstance(space, gym.spaces.Box) and len(space.shape) == 1
    if not vector:
        env = gym.wrappers.FlattenObservation(env)
    kept = (np.float32, np.float64) if vector else (np.float32,)  # VecEnv casts float64 states
    if env.observation_space.dtype not in kept:
        env = gym.wrappers.DtypeObservation(env, np.float32)
    sizes = one_hot_sizes(space)
    if sizes is not None:  # the same vectors, marked as one-hots
        env.observation_space = OneHotBox(sizes)
    return env


def _env_fn(
    cfg: EnvConfig, render_mode: str | None, training: bool = True, max_episode_steps: int | None = None
) -> Callable[[], gym.Env]:
    """A factory of one env: made, wrapped in `env.wrappers`, then adapted by rlrun; Atari envs
    get the standard preprocessing (rlrun.envs.atari).

    Episodes end at `max_episode_steps`, else `env.max_episode_steps`, else the registered time
    limit, else `env.unlimited_max_episode_steps` (Atari: ALE's own frame limit).
    """

    def make() -> gym.Env:
        load(cfg.id, cfg.imports, cfg.entry_point)
        kwargs = dict(cfg.kwargs)
        if render_mode is not None:  # as a user calls gym.make: render_mode only to render
            kwargs["render_mode"] = render_mode
        limit = max_episode_steps or cfg.max_episode_steps
        if limit is not None:
            kwargs["max_episode_steps"] = limit
        if cfg.family == "atari":
            from rlrun.envs.atari import wrap_atari  # registers the ALE ids

            kwargs["frameskip"] = 1  # wrap_atari skips frames, max-pooling the last two
            env = gym.make(cfg.id, **kwargs)
            return wrap_atari(apply_wrappers(env, cfg.wrappers, cfg.id), training)
        env = gym.make(cfg.id, **kwargs)
        unlimited = limit is None and (env.spec is None or env.spec.max_episode_steps is None)
        env = apply_wrappers(env, cfg.wrappers, cfg.id)
        if unlimited:
            env = gym.wrappers.TimeLimit(env, cfg.unlimited_max_episode_steps)
        return adapt_observations(env)

    return make


@dataclass(frozen=True)
class VideoSpec:
    """Record the first `episodes` episodes, spread over the envs like evaluation quotas, to MP4."""

    folder: Path
    """Directory of the video files."""
    episodes: int
    """Episodes recorded over all envs (count)."""
    prefix: str
    """File name prefix; files are `<prefix>-env<i>-episode-<k>.mp4`."""


def _recording(make: Callable[[], gym.Env], video: VideoSpec, index: int, num_envs: int) -> gym.Env:
    """Env `index` of `num_envs`, wrapped in Gymnasium's RecordVideo (which needs moviepy)."""
    count = video.episodes // num_envs + (index < video.episodes % num_envs)
    with warnings.catch_warnings():  # file names differ per checkpoint; a re-run replaces its own
        warnings.filterwarnings("ignore", message=".*Overwriting existing videos.*")
        return gym.wrappers.RecordVideo(
            make(), str(video.folder), episode_trigger=lambda episode: episode < count,
            name_prefix=f"{video.prefix}-env{index}",
        )


def check_env_id(env_id: str) -> None:
    """Refuse an id that Gymnasium does not know (after its modules' import), naming close matches."""
    from rlrun.envs.config_source import registered_env_ids, similar_env_ids

    if registry_id(env_id) not in registered_env_ids():
        close = similar_env_ids(env_id)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise ConfigError(f"unknown env '{env_id}'{hint} ({UNKNOWN_ENV_HINT})")


def render_off_screen() -> None:
    """Without a display, render MuJoCo through EGL and pygame off-screen, unless MUJOCO_GL or
    SDL_VIDEODRIVER says otherwise. Call it before the env's modules are imported: dm_control
    picks its renderer when it is imported."""
    if "DISPLAY" not in os.environ:
        os.environ.setdefault("MUJOCO_GL", "egl")
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        os.environ.setdefault("SDL_AUDIODRIVER", "dummy")


def check_renders(cfg: EnvConfig) -> None:
    """Refuse, in one line, an env that cannot render rgb_array frames (for eval.video): its
    constructor takes no render_mode, its metadata's render_modes lack rgb_array, or its first
    frame fails (no OpenGL for MuJoCo, say)."""
    refused = f"env {cfg.id} cannot render rgb_array frames for eval.video=true"
    with warnings.catch_warnings():  # Gymnasium's warning on a mode outside render_modes
        warnings.simplefilter("ignore")
        try:
            env = build_env(cfg, _env_fn(cfg, "rgb_array"))
        except ConfigError as error:
            if "render_mode" in str(error):
                raise ConfigError(f"{refused}: its constructor takes no render_mode; drop "
                                  "eval.video=true") from None
            raise
    modes = list(env.metadata.get("render_modes") or [])
    if "rgb_array" not in modes:
        env.close()
        raise ConfigError(f"{refused} (its metadata's render_modes: {modes}); drop eval.video=true")
    try:
        env.reset(seed=0)
        env.render()
    except Exception as error:  # noqa: BLE001 - a renderer may raise anything; one line names it
        raise ConfigError(
            f"{refused}: {first_line(error)} (MuJoCo without a display renders with MUJOCO_GL=egl "
            "or MUJOCO_GL=osmesa)"
        ) from None
    finally:
        env.close()


def refuse_in_process_task(cfg: EnvConfig) -> None:
    """Refuse env=lm, the in-process language task, for algorithms that need Gymnasium envs."""
    if cfg.family == "lm":
        raise ConfigError(
            f"env={cfg.id} is the in-process language-model task of algo=ppo_lm and algo=grpo, not a Gymnasium env"
        )


def env_spaces(cfg: EnvConfig) -> tuple[gym.Space, gym.Space]:
    """Observation and action space of one env, refusing unknown or unbuildable ids."""
    refuse_in_process_task(cfg)
    load(cfg.id, cfg.imports, cfg.entry_point)
    check_env_id(cfg.id)
    key = repr(cfg)
    if key not in _SPACES:
        env = build_env(cfg, _env_fn(cfg, None))
        _check_scalar_rewards(env, cfg.id)
        _SPACES[key] = env.observation_space, env.action_space
        env.close()
    return _SPACES[key]


def _check_scalar_rewards(env: gym.Env, env_id: str) -> None:
    """Refuse an env that declares vector rewards (a `reward_space` of several numbers, as
    MO-Gymnasium's envs do) unless the wrappers in `env.wrappers` make them one: a step tells."""
    shape = getattr(getattr(env.unwrapped, "reward_space", None), "shape", None)
    if not shape or np.prod(shape) == 1:
        return
    env.reset(seed=0)
    reward = env.step(env.action_space.sample())[1]
    if np.ndim(reward) > 0:
        raise non_scalar_reward(reward, f"env {env_id}")


_SPACES: dict[str, tuple[gym.Space, gym.Space]] = {}
"""Spaces of the env configs built so far (by the config's repr): validation builds each once."""


@cache
def mujoco_warnings_once() -> None:
    """Show each MuJoCo warning once per process: MuJoCo prints a model's compiler warnings (e.g.
    HalfCheetah's deprecated `settotalmass`) every time an env of it is built."""
    try:
        import mujoco
    except ImportError:
        return
    shown: set[str] = set()

    def warn(message: str) -> None:
        if message not in shown:
            shown.add(message)
            print(f"WARNING: {message}", file=sys.stderr, flush=True)

    mujoco.set_mju_user_warning(warn)


def forget_spaces() -> None:
    """Forget the spaces built so far: an id now makes another env (an env given in Python,
    `rlrun.envs.python_env`)."""
    _SPACES.clear()


def build_env(cfg: EnvConfig, make: Callable[[], gym.Env]) -> gym.Env:
    """`make()`, with a missing package or a failing constructor reported in one line."""
    from rlrun.extras import install_hint

    if cfg.family == "mujoco":
        mujoco_warnings_once()
    try:
        return make()
    except ConfigError:
        raise
    except gym.error.DependencyNotInstalled as error:
        text = str(error).splitlines()[0]
        extra = next((name for name in ("box2d", "mujoco", "atari", "classic-control")
                      if name in text.lower() or (name == "atari" and "ale" in text.lower())), None)
        if extra in ("box2d", "atari"):
            raise ConfigError(f"env {cfg.id} needs the {extra} extra: {install_hint(extra)}") from None
        raise ConfigError(f"env {cfg.id} needs packages that are not installed: {text}") from None
    except (gym.error.Error, TypeError, ValueError, AssertionError) as error:
        rejected = rejected_keyword(error, cfg.kwargs, env_creator(cfg.id), cfg.id, "env.kwargs")
        if rejected is not None:
            raise ConfigError(rejected) from None
        hint = "; check env.kwargs" if cfg.kwargs else " (raised by the env's own code, given no env.kwargs)"
        raise ConfigError(f"cannot build env {cfg.id}: {first_line(error)}{hint}") from None


def _envpool_envs(cfg: EnvConfig, num_envs: int) -> EnvPoolVectorEnv:
    """EnvPool's envs for `env.backend=envpool`, refusing what it cannot build."""
    import difflib

    from rlrun.extras import missing

    try:
        import envpool
    except ImportError:
        raise missing("envpool", "env.backend=envpool (Linux x86-64, Python >= 3.11)") from None
    ids = envpool.list_all_envs()
    if cfg.id not in ids:
        close = difflib.get_close_matches(cfg.id, ids, n=3, cutoff=0.6)
        hint = f"did you mean {', '.join(close)}? Or" if close else "use"
        raise ConfigError(f"EnvPool has no env '{cfg.id}': {hint} env.backend=gymnasium")
    kwargs = dict(cfg.kwargs)
    if cfg.max_episode_steps is not None:
        kwargs["max_episode_steps"] = cfg.max_episode_steps

    def make(seed: int):
        with warnings.catch_warnings():  # EnvPool's spaces warn about their float64 bounds
            warnings.simplefilter("ignore")
            pool = envpool.make(cfg.id, env_type="gymnasium", num_envs=num_envs,
                                num_threads=min(cfg.threads, num_envs), seed=seed, **kwargs)
            _ = pool.observation_space, pool.action_space  # the pool caches them: built here, not at its first step
            return pool

    try:
        return EnvPoolVectorEnv(make, num_envs)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ConfigError(f"cannot build EnvPool env {cfg.id}: {str(error).splitlines()[0]}; check env.kwargs") from None


def make_vec_env(
    cfg: EnvConfig,
    num_envs: int,
    *,
    gamma: float = 0.99,
    training: bool = True,
    obs_normalizer: ObsNormalizer | None = None,
    render_mode: str | None = None,
    video: VideoSpec | None = None,
    max_episode_steps: int | None = None,
    record_episodes: EpisodeRecording | None = None,
    final_info: FinalInfo | None = None,
) -> VecEnv:
    """Build `num_envs` copies of the configured env as one VecEnv.

    Training envs create their own normalisers from the config; evaluation envs
    (`training=False`) reuse the training `obs_normalizer` frozen and never scale rewards.
    With `video`, the envs render rgb_array frames and record episodes as `video` says;
    without a display, MuJoCo renders through EGL and pygame (classic control) off-screen,
    unless MUJOCO_GL or SDL_VIDEODRIVER says otherwise. Rendering always uses Gymnasium's
    envs (EnvPool does not render), whatever `env.backend` says. `max_episode_steps` caps
    episodes below the config's time limit (evaluation's `eval.max_episode_steps`). With
    `record_episodes`, each env is wrapped in its recorder, and the envs are Gymnasium's, stepped in
    this process (whatever `env.backend` and `env.vectorization` say) so that it can be read.
    With `final_info`, each step's `episode_infos` holds its keys from the ended episodes' final
    infos.
    """
    refuse_in_process_task(cfg)
    if cfg.family == "mujoco":
        mujoco_warnings_once()
    if video is not None:
        render_mode = "rgb_array"
        render_off_screen()
        check_renders(cfg)
    envs: SerialVectorEnv | SubprocessVectorEnv | EnvPoolVectorEnv
    if cfg.backend == "envpool" and render_mode is None and record_episodes is None:
        envs = _envpool_envs(cfg, num_envs)
    else:
        fns = [_env_fn(cfg, render_mode, training, max_episode_steps) for _ in range(num_envs)]
        if video is not None:
            fns = [partial(_recording, fn, video, i, num_envs) for i, fn in enumerate(fns)]
        if record_episodes is not None:
            fns = [partial(record_episodes.wrap, fn, i) for i, fn in enumerate(fns)]
        if cfg.vectorization == "async" and record_episodes is None:
            envs = SubprocessVectorEnv(fns)
        else:
            envs = SerialVectorEnv(fns, replayable=training)
    obs_space = envs.single_observation_space
    normalizable = isinstance(obs_space, gym.spaces.Box) and obs_space.dtype != np.uint8
    if training and cfg.normalize_obs and normalizable:
        obs_normalizer = ObsNormalizer(obs_space.shape, cfg.clip_obs)
    reward_normalizer = None
    if training and cfg.normalize_reward:
        reward_normalizer = RewardNormalizer(num_envs, gamma, cfg.clip_reward)
    return VecEnv(envs, obs_normalizer, reward_normalizer, training, final_info)
