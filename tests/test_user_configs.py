"""The user's config dirs (`--config-dir`, `hydra.searchpath`, RLRUN_CONFIG_PATH) and the
`experiment/` group: the user's files compose, win over shipped ones of the same name, show in the
start panel, are recorded in the run, survive `resume=`, and a mistake in one names the file."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

import pytest
import torch
from conftest import refused, rlrun
from omegaconf import OmegaConf

from rlrun.cli import config_dirs
from rlrun.cli import train_command as cli
from rlrun.cli.compose import CONF_DIR, compose_checked, override_lists

TINY = ["eval.episodes=2", "eval.num_envs=2", "eval.every_steps=0", "torch_threads=1"]

FILES = {
    # Replaces the shipped preset of that name: no optimizer of its own (the shipped one picks RMSprop).
    "preset/a2c_classic.yaml": """\
# @package _global_
env:
  num_envs: 4
algo:
  ent_coef: 0.02
  gamma: 0.95
""",
    "env/CartPole-short.yaml": """\
# @package _global_
defaults:
  - /family: classic
env:
  id: CartPole-v1
  max_episode_steps: 60
""",
    "experiment/tiny.yaml": """\
# @package _global_
defaults:
  - override /algo: a2c
  - override /env: CartPole-short
  - override /optimizer: rmsprop
total_timesteps: 256
algo:
  ent_coef: 0.05
""",
    "experiment/tiny_ppo.yaml": """\
# @package _global_
defaults:
  - override /algo: ppo
  - override /logger: tensorboard
total_timesteps: 256
algo:
  num_steps: 32
""",
    "hparams_search/a2c_tiny.yaml": """\
# @package _global_
defaults:
  - override /hydra/sweeper: rlrun_optuna
hparams_search:
  seeds: [0]
hydra:
  mode: MULTIRUN
  sweeper:
    n_trials: 1
    params:
      algo.ent_coef: tag(log, interval(1e-4, 0.1))
""",
}


@pytest.fixture(autouse=True)
def _no_dirs_from_elsewhere(monkeypatch):
    """No team dir from the environment; no dirs left on the search path for later tests."""
    monkeypatch.delenv(config_dirs.ENV_VAR, raising=False)
    cli._setup()  # rlrun's plugins and resolvers, as every command registers them
    yield
    config_dirs.take_from_argv([])
    config_dirs.use_recorded([])


@pytest.fixture
def conf(tmp_path) -> Path:
    """A user config dir with an experiment, a preset of a shipped name, an env and a search."""
    root = tmp_path / "myconf"
    for relative, text in FILES.items():
        (root / relative).parent.mkdir(parents=True, exist_ok=True)
        (root / relative).write_text(text)
    return root


def train(monkeypatch, *args) -> None:
    """`rlrun ARGS` in this process."""
    monkeypatch.setattr(sys, "argv", ["rlrun", *map(str, args)])
    cli.train()


def panel(run_dir: Path) -> dict[str, str]:
    """The start panel's rows (name -> value) as train.log holds them."""
    rows = {}
    for line in (run_dir / "train.log").read_text().splitlines():
        name, _, value = line.partition("] ")[2].strip().partition("  ")
        rows.setdefault(name, value.strip())
    return rows


def ways(conf: Path, monkeypatch, way: str) -> list[str]:
    """The arguments (or environment) that add `conf` one of the three ways."""
    if way == "env var":
        (team := conf.parent / "team" / "preset").mkdir(parents=True)  # the team's (its a2c preset loses)
        (team / "a2c_classic.yaml").write_text("# @package _global_\nalgo:\n  gamma: 0.5\n")
        monkeypatch.setenv(config_dirs.ENV_VAR, os.pathsep.join([str(conf), str(team.parent)]))
        return []
    return ["--config-dir", str(conf)] if way == "--config-dir" else [f"hydra.searchpath=[file://{conf}]"]


@pytest.mark.parametrize("way", ["--config-dir", "hydra.searchpath", "env var"])
def test_user_files_win_show_in_the_panel_and_are_recorded(conf, tmp_path, monkeypatch, way):
    run_dir = tmp_path / "run"
    train(monkeypatch, *ways(conf, monkeypatch, way), "+experiment=tiny", *TINY, f"hydra.run.dir={run_dir}")
    config = OmegaConf.load(run_dir / ".hydra" / "config.yaml")
    assert config.algo.name == "a2c" and config.env.max_episode_steps == 60  # the experiment's choices
    assert config.env.num_envs == 4 and config.algo.gamma == 0.95  # the user's preset, not rlrun's
    assert config.algo.ent_coef == 0.05 and config.total_timesteps == 256  # the experiment's, last
    assert config.optimizer.name == "rmsprop"
    rows = panel(run_dir)
    shipped = "preset/a2c_classic.yaml"
    assert rows["preset"] == (f"{conf / shipped} (instead of rlrun's {shipped}) + "
                              f"{conf / 'experiment/tiny.yaml'}")
    assert rows["your configs"] == str(conf / "env/CartPole-short.yaml")
    assert OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")[0] == "+experiment=tiny"
    hydra = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra
    sources = [s.path for s in hydra.runtime.config_sources if s.schema == "file"]
    assert sources.index(str(conf)) < sources.index(CONF_DIR)  # the user's dir first
    assert hydra.runtime.choices.experiment == "tiny"
    state = torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)
    assert state["config_dirs"][0] == f"file://{conf}"  # (then the team dir of the env var way)


def test_resume_finds_the_runs_config_dir_or_names_the_flag(conf, tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    train(monkeypatch, "--config-dir", conf, "+experiment=tiny", *TINY, f"hydra.run.dir={run_dir}")
    train(monkeypatch, f"resume={run_dir}", "total_timesteps=512")  # without --config-dir
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["global_step"] >= 512
    assert str(conf / "experiment/tiny.yaml") in panel(run_dir)["preset"]
    moved = conf.rename(tmp_path / "moved")
    line = refused(capsys, cli.train, f"resume={run_dir}", "total_timesteps=768")
    assert f"config dir {conf}, which is gone" in line and "add --config-dir" in line
    train(monkeypatch, "--config-dir", moved, f"resume={run_dir}", "total_timesteps=768")
    assert torch.load(run_dir / "checkpoints" / "last.pt", weights_only=True)["global_step"] >= 768


def test_a_command_line_choice_wins_over_an_experiments_override(conf):
    config_dirs.take_from_argv(["--config-dir", str(conf)])
    cfg = compose_checked("train", ["+experiment=tiny_ppo", "logger=default", "algo=a2c",
                                    "optimizer=sgd"], "hydra.run.dir")
    assert not cfg.logger.tensorboard and cfg.algo.name == "a2c"  # not the experiment's choices
    assert cfg.optimizer.name == "sgd" and cfg.env.num_envs == 4  # the user's a2c preset applies
    assert cfg.algo.num_steps == 32 and cfg.total_timesteps == 256  # the experiment's values


@pytest.mark.parametrize("name", sorted(p.stem for p in (Path(CONF_DIR) / "experiment").glob("*.yaml")))
def test_shipped_experiments_compose_over_their_presets(name):
    cfg = compose_checked("train", [f"+experiment={name}"])
    text = (Path(CONF_DIR) / "experiment" / f"{name}.yaml").read_text()
    assert f"override /algo: {cfg.algo.name}" in text and f"override /env: {cfg.env.id}" in text
    preset = OmegaConf.load(Path(CONF_DIR) / "preset" / f"{cfg.algo.name}_{cfg.env.family}.yaml")
    experiment = OmegaConf.load(Path(CONF_DIR) / "experiment" / f"{name}.yaml")
    del experiment["defaults"]
    overlap = OmegaConf.masked_copy(cfg, list(experiment))
    assert OmegaConf.merge(overlap, experiment) == overlap  # every value of the experiment applies
    kept = {k: v for k, v in OmegaConf.to_container(preset).items() if k not in experiment}
    assert OmegaConf.merge(OmegaConf.masked_copy(cfg, list(kept)), kept) == OmegaConf.masked_copy(cfg, list(kept))


@pytest.mark.parametrize(
    ("file", "text", "fragment"),
    [
        ("experiment/tiny.yaml", "# @package _global_\nalgo:\n  ent_cof: 0.1\n",
         "unknown key 'algo.ent_cof'; did you mean algo.ent_coef"),
        ("experiment/tiny.yaml", "# @package _global_\nalgo:\n  gamma: high\n",
         "algo.gamma: Value 'high' of type 'str' could not be converted to Float"),
        ("preset/a2c_classic.yaml", "# @package _global_\nalgo:\n  gamma: 3\n", "algo.gamma=3.0 is outside"),
        ("env/CartPole-short.yaml", "env:\n  id: [CartPole-v1\n", "invalid YAML in"),
    ],
)
def test_a_mistake_in_a_user_file_is_refused_in_one_line_naming_the_file(
    conf, capsys, monkeypatch, file, text, fragment
):
    (conf / file).write_text(text)
    line = refused(capsys, cli.train, "--config-dir", conf, "+experiment=tiny", "total_timesteps=64")
    assert str(conf / file) in line and fragment in line


def test_group_choices_list_the_users_options(conf, capsys, monkeypatch):
    line = refused(capsys, cli.train, "--config-dir", conf, "+experiment=tiy")
    assert "did you mean tiny" in line and "tiny_ppo" in line and "sac_pendulum_short" in line
    assert "+experiment=tiny" in refused(capsys, cli.train, "--config-dir", conf, "experiment=tiny")
    assert "--config-dir names" in refused(capsys, cli.train, "--config-dir", conf / "nope")
    monkeypatch.setenv(config_dirs.ENV_VAR, str(conf / "nope"))
    assert config_dirs.ENV_VAR in refused(capsys, cli.train, "total_timesteps=64")
    monkeypatch.delenv(config_dirs.ENV_VAR)
    config_dirs.take_from_argv(["-cd", str(conf)])
    sets, _ = override_lists(["+experiment=glob(tiny*)"])  # every job checked before the sweep
    assert sets == [["+experiment=tiny"], ["+experiment=tiny_ppo"]]


def test_a_joblib_sweep_over_two_user_experiments_and_its_report(conf, tmp_path, monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    sweep = tmp_path / "sweep"
    work = tmp_path / "elsewhere"
    work.mkdir()
    result = rlrun("-m", "+experiment=tiny,tiny_ppo", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2",
                   *TINY, f"hydra.sweep.dir={sweep}", cwd=work, env={config_dirs.ENV_VAR: str(conf)})
    assert result.returncode == 0, result.stderr
    algos = {}
    for run_dir in sweep.glob("*/"):
        if (run_dir / ".hydra").is_dir():
            algos[OmegaConf.load(run_dir / ".hydra" / "overrides.yaml")[0]] = OmegaConf.load(
                run_dir / ".hydra" / "config.yaml").algo.name
    assert algos == {"+experiment=tiny": "a2c", "+experiment=tiny_ppo": "ppo"}
    assert f"{conf / 'experiment/tiny_ppo.yaml'}" in result.stdout
    monkeypatch.setattr(sys, "argv", ["rlrun-report", str(sweep), "--resamples", "50"])
    cli.report()
    assert "experiment=tiny_ppo" in (sweep / "report" / "report.md").read_text()


def test_a_user_search_space_runs_and_is_recorded(conf, tmp_path):
    pytest.importorskip("optuna")
    sweep = tmp_path / "sweep"
    result = rlrun("--config-dir", conf, "+experiment=tiny", "hparams_search=a2c_tiny", *TINY,
                   f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    unlabelled = (re.sub(r"^\[job [^\]]*\]", "", line) for line in result.stdout.splitlines())
    shown = [line for line in unlabelled if line.strip().startswith("your configs")]
    assert shown and str(conf / "hparams_search/a2c_tiny.yaml") in shown[0]
    (hydra_file,) = sweep.glob("*/seed_0/.hydra/hydra.yaml")
    assert OmegaConf.load(hydra_file).hydra.runtime.choices.hparams_search == "a2c_tiny"
    assert (sweep / "optuna.db").is_file()


def test_help_lists_the_users_experiments(conf, tmp_path):
    result = rlrun("--config-dir", conf, "--help", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    shown = result.stdout
    assert "tiny_ppo" in shown and "sac_pendulum_short" in shown and config_dirs.ENV_VAR in shown


def test_the_readme_example_experiment_composes(tmp_path, monkeypatch, capsys):
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    name, text = re.search(r"`myconf/experiment/(\w+)\.yaml`:\n\n```yaml\n(.*?)```", readme, re.DOTALL).groups()
    (tmp_path / "myconf" / "experiment").mkdir(parents=True)
    (tmp_path / "myconf" / "experiment" / f"{name}.yaml").write_text(text)
    monkeypatch.chdir(tmp_path)
    config_dirs.take_from_argv(["--config-dir", "./myconf"])
    cfg = compose_checked("train", [f"+experiment={name}"])
    assert (cfg.algo.name, cfg.env.id, cfg.total_timesteps, cfg.eval.episodes) == ("sac", "Pendulum-v1", 5000, 4)
    assert cfg.algo.learning_starts == 1000  # the SAC classic preset, applied before the experiment
