"""Command-line arguments as users type them: pasted paths, `resume=`, integral floats, typos."""

from __future__ import annotations

import pytest
from hydra.core.override_parser.overrides_parser import OverridesParser

from rlrun.cli.arguments import parse_error, rewrite
from rlrun.config import ConfigError

JOB_DIR = "outputs/multirun/2026-12-02/10-00-00/algo=a2c,env=CartPole-v1,seed=0"


def _value(override: str):
    (parsed,) = OverridesParser.create().parse_overrides([override])
    return parsed.key_or_group, parsed.value()


@pytest.mark.parametrize(
    "key", ["checkpoint", "resume", "resume.path", "hydra.run.dir", "algo.expert"]
)
def test_a_printed_job_dir_parses_back_as_one_path(key):
    (override,) = rewrite([f"{key}={JOB_DIR}/checkpoints/last.pt"])
    expected_key = "resume.path" if key == "resume" else key
    assert _value(override) == (expected_key, f"{JOB_DIR}/checkpoints/last.pt")


@pytest.mark.parametrize("path", ["run's dir/x", "a\\'b", "ends\\", "'already quoted'"])
def test_quoting_keeps_quotes_and_backslashes(path):
    (override,) = rewrite([f"checkpoint={path}"])
    expected = path[1:-1] if path.startswith("'") else path
    assert _value(override) == ("checkpoint", expected)


def test_a_bare_path_is_the_checkpoint_of_rlrun_eval(tmp_path):
    job = tmp_path / "algo=a2c,seed=0"
    job.mkdir()
    assert [
        _value(o) for o in rewrite([str(job), "eval.episodes=3"], positional_key="checkpoint")
    ] == [("checkpoint", str(job)), ("eval.episodes", 3)]
    assert _value(rewrite(["runs/x"], positional_key="checkpoint")[0]) == ("checkpoint", "runs/x")


def test_a_bare_path_given_to_rlrun_says_how_to_use_it(tmp_path):
    with pytest.raises(ConfigError, match=r"rlrun resume=.*rlrun-eval "):
        rewrite([str(tmp_path)])
    # group choices with a slash and values with a slash stay overrides
    assert rewrite(["hydra/launcher=joblib", "env=ALE/Pong-v5"]) == [
        "hydra/launcher=joblib",
        "env=ALE/Pong-v5",
    ]


@pytest.mark.parametrize(
    "given, expected",
    [
        ("total_timesteps=2e5", 200000),
        ("total_timesteps=1_000_000", 1000000),
        ("eval.every_steps=5e4", 50000),
        ("algo.buffer_size=1.0e6", 1000000),
        ("optimizer.lr=3e-4", 3e-4),
        ("algo.gamma=1e0", 1.0),
    ],
)
def test_integral_floats_become_integers_for_integer_keys_only(given, expected):
    _, value = _value(rewrite([given])[0])
    assert value == expected and type(value) is type(expected)


def test_sweeps_of_integral_floats_and_flags_pass_through():
    assert rewrite(["-m", "total_timesteps=1e5,2e5", "--cfg", "job", "seed=0,1"]) == [
        "-m",
        "total_timesteps=100000,200000",
        "--cfg",
        "job",
        "seed=0,1",
    ]


def test_parse_error_names_the_argument_and_how_to_quote():
    message = parse_error(["seed=0", "env.kwargs.x=a=b"], ValueError("mismatched input"))
    assert "`env.kwargs.x=a=b`" in message and "key='value'" in message
