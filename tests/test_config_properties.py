"""Property-based tests of the config schema: any value a user can type for a key is either
taken exactly or refused with one line that names the key (never a traceback)."""

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rlrun.cli import train_command as cli

FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def compose(capsys, override: str):
    """(typed config, None) when accepted; (None, the error line) when refused with exit 2."""
    from omegaconf import OmegaConf

    cli._setup()
    try:
        return OmegaConf.to_object(cli.compose_checked("train", [override, "logger.console=false"])), None
    except SystemExit as stop:
        assert stop.code == cli.USAGE_EXIT
        lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
        assert len(lines) == 1 and lines[0].startswith("rlrun: ")
        return None, lines[0]


def lookup(cfg, key: str):
    for part in key.split("."):
        cfg = getattr(cfg, part)
    return cfg


# (key, predicate of an accepted value)
RANGES = [
    ("optimizer.lr", lambda v: v > 0),
    ("algo.gamma", lambda v: 0 < v <= 1),
    ("algo.gae_lambda", lambda v: 0 <= v <= 1),
    ("algo.clip_coef", lambda v: v > 0),
    ("algo.max_grad_norm", lambda v: v >= 0),
    ("algo.ent_coef", lambda v: v >= 0),
]


@pytest.mark.slow
@pytest.mark.parametrize("key, valid", RANGES, ids=[key for key, _ in RANGES])
@FAST
@given(value=st.floats(min_value=-10, max_value=10, allow_nan=False))
def test_float_values_are_taken_exactly_or_refused_by_name(capsys, key, valid, value):
    cfg, error = compose(capsys, f"{key}={value!r}")
    if valid(value):
        assert error is None, error
        assert lookup(cfg, key) == value
    else:
        assert cfg is None and key in error


@pytest.mark.slow
@pytest.mark.parametrize("key, minimum", [("env.num_envs", 1), ("total_timesteps", 1), ("seed", 0),
                                          ("checkpoint.keep", 0), ("eval.episodes", 1)])
@FAST
@given(value=st.integers(min_value=-1000, max_value=100_000))
def test_integer_values_are_taken_exactly_or_refused_by_name(capsys, key, minimum, value):
    cfg, error = compose(capsys, f"{key}={value}")
    if value >= minimum:
        assert error is None, error
        assert lookup(cfg, key) == value
    else:
        assert cfg is None and key in error


@pytest.mark.slow
@FAST
@given(text=st.text(alphabet="abcxyz_-.", min_size=1, max_size=12))
def test_text_for_a_number_is_refused_by_name(capsys, text):
    cfg, error = compose(capsys, f"total_timesteps={text}")
    assert cfg is None and "total_timesteps" in error


@pytest.mark.slow
@FAST
@given(key=st.from_regex(r"\A[a-z]{3,10}\Z"))
def test_unknown_top_level_keys_are_refused(capsys, key):
    known = {"algo", "env", "network", "optimizer", "logger", "eval", "checkpoint", "seed", "device",
             "resume", "train", "hydra", "family", "preset"}
    if key in known or key in {"total_timesteps", "torch_threads", "deterministic"}:
        return
    cfg, error = compose(capsys, f"{key}=1")
    assert cfg is None and key in error
