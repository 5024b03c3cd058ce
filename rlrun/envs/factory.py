"""The one place where Gymnasium environments, wrappers and vector envs are built.

The vector env itself lives in `rlrun.envs.vec_env`, the observation adapter in
`rlrun.envs.observations` and the config checks in `rlrun.envs.env_checks`; their names are
importable from here too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import gymnasium as gym
import numpy as np

from rlrun.config import ConfigError, EnvConfig
from rlrun.envs.env_checks import (
    check_env_id,
    check_scalar_rewards,
    mujoco_warnings_once,
    refuse_in_process_task,
    render_off_screen,
)
from rlrun.envs.final_info import FinalInfo
from rlrun.envs.imports import first_line, load
from rlrun.envs.normalize import ObsNormalizer, RewardNormalizer
from rlrun.envs.observations import (
    FLAT_SPACES,
    OneHotBox,
    adapt_observations,
    is_image,
    one_hot_sizes,
)
from rlrun.envs.recording import EpisodeRecording
from rlrun.envs.vec_env import Step, VecEnv
from rlrun.envs.vector import EnvPoolVectorEnv, SerialVectorEnv, SubprocessVectorEnv
from rlrun.envs.wrappers import apply_wrappers, env_creator, rejected_keyword

__all__ = [
    "FLAT_SPACES", "OneHotBox", "Step", "VecEnv", "VideoSpec", "adapt_observations", "build_env",
    "check_env_id", "check_renders", "env_spaces", "forget_spaces", "is_image", "make_vec_env",
    "mujoco_warnings_once", "one_hot_sizes", "refuse_in_process_task", "render_off_screen",
]


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


def env_spaces(cfg: EnvConfig) -> tuple[gym.Space, gym.Space]:
    """Observation and action space of one env, refusing unknown or unbuildable ids."""
    refuse_in_process_task(cfg)
    load(cfg.id, cfg.imports, cfg.entry_point)
    check_env_id(cfg.id)
    key = repr(cfg)
    if key not in _SPACES:
        env = build_env(cfg, _env_fn(cfg, None))
        check_scalar_rewards(env, cfg.id)
        _SPACES[key] = env.observation_space, env.action_space
        env.close()
    return _SPACES[key]


_SPACES: dict[str, tuple[gym.Space, gym.Space]] = {}
"""Spaces of the env configs built so far (by the config's repr): validation builds each once."""


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
