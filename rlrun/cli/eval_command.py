"""`rlrun-eval`: evaluate a checkpoint (on its training env or a variant of it), print a table
and write `<stem>.eval.json`; optionally export the policy, record videos or a Minari dataset.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import OmegaConf

from rlrun.cli.arguments import rewrite
from rlrun.cli.compose import (
    compose_checked,
    fail,
    override_lists,
    split_env_overrides,
)
from rlrun.cli.setup import closed_pipe_ends_quietly, setup
from rlrun.cli.sweep_jobs import job_dir_name
from rlrun.config import ConfigError, EnvConfig, EvalRunConfig
from rlrun.registry import warn_broken
from rlrun.run.checkpoint_files import run_dir_of

if TYPE_CHECKING:
    from torch import nn

    from rlrun.envs.factory import VecEnv
    from rlrun.envs.recording import EpisodeRecording


EVAL_USAGE = """usage: rlrun-eval <run dir or checkpoint> [key=value ...]   (or checkpoint=<path>)
  eval.episodes=10          episodes (count)
  eval.deterministic=true   mean/argmax actions (false: sample)
  eval.num_envs=5           parallel eval envs (count)
  eval.max_episode_steps=   cap of each episode (env steps; default: the training envs' limit)
  eval.seed_offset=1000003  eval envs are seeded with seed + seed_offset
  eval.video=false          record MP4s to <run dir>/eval/ (needs the video extra)
  eval.video_episodes=1     episodes recorded (count)
  eval.export=null          torchscript | onnx: write a self-contained policy file beside the checkpoint
  eval.dataset=null         namespace/name-v0: record the episodes as a Minari dataset (minari extra)
  eval.dataset_overwrite=false  replace an existing dataset of that id
  device=auto  seed=<the run's seed>  torch_threads=1
On a variant of the training env whose spaces match (the results go to <stem>.eval.<variant>.json):
  env.id=<id> (or env=<id>)  env.kwargs.<name>=<value>  ~env.kwargs.<name>
  env.max_episode_steps=N    env.wrappers=[...]    ~env.wrappers (~env.<key>: its default)"""


@closed_pipe_ends_quietly
def evaluate() -> None:
    """`rlrun-eval <checkpoint or run dir> [eval.episodes=N ...]`: evaluate a checkpoint, print and save JSON."""
    setup()
    if any(arg in ("--help", "-h") for arg in sys.argv[1:]):
        print(EVAL_USAGE)
        return
    try:
        arguments = rewrite(sys.argv[1:], positional_key="checkpoint")
    except ConfigError as error:
        fail(str(error))
    env_overrides, overrides = split_env_overrides(override_lists(arguments)[0][0])
    options: EvalRunConfig = OmegaConf.to_object(compose_checked("eval", overrides))
    warn_broken()
    try:
        _evaluate_checkpoint(options, env_overrides)
    except ConfigError as error:
        fail(str(error))
    except KeyboardInterrupt:
        print("rlrun-eval: interrupted; nothing was written", file=sys.stderr)
        raise SystemExit(130) from None


def _evaluate_checkpoint(options: EvalRunConfig, env_overrides: list[str]) -> dict[str, Any]:
    """Evaluate (and export, record) `options.checkpoint` on its training env, or on the variant
    `env_overrides` make of it; print a table and write `<stem>.eval.json` (a variant's:
    `<stem>.eval.<overrides>.json`; in a read-only run dir, say so and go on). Returns the
    result written there."""
    import math
    import signal

    import torch
    from rich.table import Table

    from rlrun.envs.factory import VideoSpec, render_off_screen
    from rlrun.envs.recording import EpisodeRecording
    from rlrun.export.rebuild import env_variant, load_policy
    from rlrun.extras import require
    from rlrun.results.terminal import table_console
    from rlrun.run.eval_episodes import episode_quotas
    from rlrun.run.eval_episodes import evaluate as run_evaluation
    from rlrun.run.facade import resolve_device
    from rlrun.training.stats import reported_means

    signal.signal(signal.SIGTERM, signal.default_int_handler)  # SIGTERM ends it like Ctrl-C
    started = time.time()
    recording = None
    if options.eval.dataset is not None:
        from rlrun.data.minari_datasets import check_new_dataset

        check_new_dataset(options.eval.dataset, options.eval.dataset_overwrite)  # before evaluating
        recording = EpisodeRecording(episode_quotas(options.eval.episodes, options.eval.num_envs))
    torch.set_num_threads(options.torch_threads)
    device = resolve_device(options.device)
    if options.eval.video:
        render_off_screen()  # before load_policy imports the env's modules
    loaded = load_policy(options.checkpoint, device)
    path, policy, train_cfg = loaded.path, loaded.policy, loaded.train_cfg
    _check_writable(options, path)
    state = {"algo": loaded.algo, "global_step": loaded.global_step}
    env_cfg = env_variant(train_cfg.env, env_overrides) if env_overrides else train_cfg.env
    variant = f".{job_dir_name(','.join(env_overrides))}" if env_overrides else ""
    video = None
    if options.eval.video:
        require("moviepy", "eval.video=true")
        if env_cfg.family == "classic":
            require("pygame", f"eval.video=true on {env_cfg.id}")
        video = VideoSpec(run_dir_of(path) / "eval", options.eval.video_episodes,
                          f"{path.stem}{variant}-step{state['global_step']}")
    envs = loaded.eval_envs(options.eval.num_envs, env_cfg, lambda text: print(text, file=sys.stderr),
                            video=video, max_episode_steps=options.eval.max_episode_steps,
                            record_episodes=recording)
    if options.eval.export is not None:
        _export(options.eval.export, policy, envs, path, state, env_cfg)
    seed = train_cfg.seed if options.seed is None else options.seed
    result = run_evaluation(policy, envs, options.eval.episodes, seed + options.eval.seed_offset, device,
                            options.eval.deterministic)
    envs.close()
    on = env_cfg.id
    if env_overrides:
        on += f" ({' '.join(env_overrides)}; trained on {train_cfg.env.id})"
    table = Table(title=f"{state['algo']} on {on} — {path} (step {state['global_step']})")
    info_means = reported_means(result.infos)
    for column in ("episodes", "return mean", "return std", "return IQM", "length mean",
                   *(f"{key} mean" for key in info_means)):
        table.add_column(column, justify="right")
    table.add_row(str(len(result.returns)), f"{result.mean:.2f}", f"{result.std:.2f}",
                  f"{result.iqm:.2f}", f"{result.lengths.mean():.1f}",
                  *(f"{mean:.3g}" for mean in info_means.values()))
    table_console().print(table)
    report = {
        "checkpoint": str(path), "algo": state["algo"], "env": env_cfg.id,
        "env_kwargs": env_cfg.kwargs, "env_wrappers": env_cfg.wrappers,
        "env_overrides": env_overrides, "trained_env": train_cfg.env.id,
        "global_step": state["global_step"], "episodes": len(result.returns),
        "deterministic": options.eval.deterministic, **result.metrics(),
        "returns": result.returns.tolist(), "lengths": result.lengths.tolist(),
    }
    if result.infos:  # each episode's value of the info keys it reported (null: none)
        report["final_info"] = {
            key: [None if math.isnan(value) else value for value in values.tolist()]
            for key, values in result.infos.items()
        }
    if recording is not None:
        report["dataset"] = options.eval.dataset
    out = path.with_name(f"{path.stem}.eval{variant}.json")
    try:
        out.write_text(json.dumps(report, indent=2))
        print(f"wrote {out}")
    except OSError as error:  # a read-only run dir: the result above stands
        print(f"rlrun-eval: could not write {out} ({error.strerror}); the result is only in the "
              f"table above", file=sys.stderr)
    if recording is not None:
        _write_dataset(options, recording, envs, path, state)
    if video is not None:
        for file in sorted(video.folder.glob(f"{video.prefix}-env*.mp4")):
            if file.stat().st_mtime >= started:
                print(f"wrote {file}")
    return report


def _check_writable(options: EvalRunConfig, checkpoint: Path) -> None:
    """Refuse (before evaluating) an export or a video that could not be written in the run dir."""
    from rlrun.run.writable import creatable, write_fix

    wanted = [(f"eval.export={options.eval.export}", checkpoint.parent)] if options.eval.export else []
    if options.eval.video:
        wanted.append(("eval.video=true", run_dir_of(checkpoint) / "eval"))
    for option, folder in wanted:
        if not creatable(folder):
            raise ConfigError(f"{option} cannot write in {folder} (not writable); "
                              f"{write_fix(run_dir_of(checkpoint), 'rlrun-eval <new dir>')}")


def _write_dataset(options: EvalRunConfig, recording: EpisodeRecording, envs: VecEnv, path: Path,
                   state: dict[str, Any]) -> None:
    """Write the recorded evaluation episodes as the Minari dataset `eval.dataset` and say so."""
    from rlrun.data.minari_datasets import write_dataset

    episodes = recording.episodes()
    mode = "deterministic" if options.eval.deterministic else "sampled"
    out = write_dataset(
        options.eval.dataset, episodes, recording.env_spec(), envs.single_observation_space,
        envs.single_action_space, options.eval.dataset_overwrite,
        algorithm_name=f"rlrun {state['algo']}",
        description=f"{len(episodes)} evaluation episodes ({mode} actions) of {path} at step "
                    f"{state['global_step']}",
    )
    steps = sum(len(episode.actions) for episode in episodes)
    print(f"wrote Minari dataset {options.eval.dataset} ({len(episodes)} episodes, {steps} steps) "
          f"to {out}")


def _export(
    fmt: str, policy: nn.Module, envs: VecEnv, path: Path, state: dict[str, Any], env_cfg: EnvConfig
) -> None:
    """Write the self-contained policy file beside the checkpoint (rlrun.export.formats) and say so."""
    from rlrun.export.formats import export_policy

    metadata = {"algo": state["algo"], "env": env_cfg.id, "global_step": str(state["global_step"]),
                "env_kwargs": json.dumps(env_cfg.kwargs),
                "env_wrappers": json.dumps(env_cfg.wrappers),
                "observation_space": str(envs.single_observation_space),
                "action_space": str(envs.single_action_space),
                "input": f"obs: float32 (batch, {', '.join(map(str, envs.single_observation_space.shape))})"}
    out, difference = export_policy(policy, envs.single_observation_space, envs.single_action_space,
                                    envs.obs_normalizer, fmt, path, metadata)
    print(f"wrote {out} (max |action difference| from the checkpoint's policy: {difference:.3g})")
