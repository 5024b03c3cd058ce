from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from rlrun.data.replay import ReplayBatch, ReplayBuffer

OBS_SHAPE = (2, 3)


def _buffer(capacity: int, num_envs: int, **kwargs) -> ReplayBuffer:
    return ReplayBuffer(capacity, OBS_SHAPE, (1,), num_envs, **kwargs)


def _obs(values: list[float] | np.ndarray) -> np.ndarray:
    """One observation per value, every entry equal to it."""
    return np.repeat(np.asarray(values, np.float32), np.prod(OBS_SHAPE)).reshape(-1, *OBS_SHAPE)


def _add(
    buffer: ReplayBuffer,
    obs: list[float],
    next_obs: list[float],
    terminations: list[int] | None = None,
    truncations: list[int] | None = None,
) -> None:
    """Add one step with actions and rewards equal to the observation values."""
    no_flags = [0] * len(obs)
    buffer.add(
        _obs(obs),
        _obs(next_obs),
        np.asarray(obs, np.float32)[:, None],
        np.asarray(obs, np.float32),
        np.asarray(terminations or no_flags, bool),
        np.asarray(truncations or no_flags, bool),
    )


def _sample_all(buffer: ReplayBuffer, seed: int = 0) -> ReplayBatch:
    """A batch large enough to contain every stored transition."""
    return buffer.sample(50 * buffer.capacity, torch.Generator().manual_seed(seed))


def _ids(t: torch.Tensor) -> set[float]:
    return set(t.flatten(1)[:, 0].tolist())


def _random_stream(rng: np.random.Generator, steps: int, num_envs: int, end_prob: float):
    """Consistent vector-env steps: next_obs is the following obs unless the episode ended."""
    obs = rng.standard_normal((num_envs, *OBS_SHAPE)).astype(np.float32)
    for _ in range(steps):
        next_obs = rng.standard_normal(obs.shape).astype(np.float32)
        terminations = rng.random(num_envs) < end_prob
        truncations = rng.random(num_envs) < end_prob
        yield (
            obs,
            next_obs,
            rng.standard_normal((num_envs, 1)).astype(np.float32),
            rng.standard_normal(num_envs).astype(np.float32),
            terminations,
            truncations,
        )
        reset = rng.standard_normal(obs.shape).astype(np.float32)
        ended = (terminations | truncations)[:, None, None]
        obs = np.where(ended, reset, next_obs)


def _assert_same_batch(a: ReplayBatch, b: ReplayBatch) -> None:
    for name, x, y in zip(ReplayBatch._fields, a, b, strict=True):
        assert torch.equal(x, y), name


@pytest.mark.parametrize("optimize_memory", [False, True])
@pytest.mark.parametrize("num_envs", [1, 2])
def test_wrap_around_overwrites_oldest(num_envs: int, optimize_memory: bool) -> None:
    buffer = _buffer(6, num_envs, optimize_memory=optimize_memory)
    steps = 6 // num_envs + 2
    for t in range(steps):
        values = [10 * t + e for e in range(num_envs)]
        _add(buffer, values, [v + 10 for v in values])
        assert buffer.full == (t + 1 >= 6 // num_envs)

    assert len(buffer) == buffer.size == buffer.capacity == 6
    batch = _sample_all(buffer)
    kept = {10 * t + e for t in range(2, steps) for e in range(num_envs)}
    assert _ids(batch.obs) == kept
    assert set(batch.actions[:, 0].tolist()) == kept
    assert torch.equal(batch.next_obs, batch.obs + 10)


def test_capacity_is_rounded_down_to_whole_rows() -> None:
    buffer = _buffer(7, 2)
    assert buffer.capacity == 6 and len(buffer) == 0 and not buffer.full
    with pytest.raises(ValueError):
        buffer.sample(1)


@pytest.mark.parametrize("optimize_memory", [False, True])
@pytest.mark.parametrize("later_steps", [0, 1, 3])
def test_truncation_bootstraps_and_termination_does_not(
    optimize_memory: bool, later_steps: int
) -> None:
    """Env 0 continues, env 1 is truncated, env 2 terminates, with final obs 101 and 102."""
    buffer = _buffer(8 * 3, 3, optimize_memory=optimize_memory)
    _add(buffer, [0, 1, 2], [10, 101, 102], terminations=[0, 0, 1], truncations=[0, 1, 0])
    for t in range(later_steps):  # after its reset env 1 observes 11, not its final obs 101
        base = 10 * (t + 1)
        _add(buffer, [base, base + 1, base + 2], [base + 10, base + 11, base + 12])

    batch = _sample_all(buffer)
    by_obs = {int(o): i for i, o in enumerate(batch.obs.flatten(1)[:, 0].tolist())}
    for obs, next_obs, terminated, truncated in [(0, 10, 0, 0), (1, 101, 0, 1), (2, 102, 1, 0)]:
        i = by_obs[obs]
        assert batch.next_obs[i].eq(next_obs).all()
        assert batch.dones[i].item() == terminated
        assert batch.terminations[i].item() == terminated
        assert batch.truncations[i].item() == truncated


@pytest.mark.parametrize("optimize_memory", [False, True])
def test_sample_shapes_and_dtypes(optimize_memory: bool) -> None:
    obs_shape = (4, 7, 7)
    buffer = ReplayBuffer(
        16, obs_shape, (), 4, obs_dtype=torch.uint8, action_dtype=torch.int64,
        optimize_memory=optimize_memory,
    )
    for _ in range(3):
        buffer.add(
            np.ones((4, *obs_shape), np.uint8), np.ones((4, *obs_shape), np.uint8),
            np.arange(4), np.ones(4, np.float32), np.zeros(4, bool), np.zeros(4, bool),
        )
    batch = buffer.sample(5)
    assert batch.obs.shape == batch.next_obs.shape == (5, *obs_shape)
    assert batch.obs.dtype == batch.next_obs.dtype == torch.uint8
    assert batch.actions.shape == (5,) and batch.actions.dtype == torch.int64
    for name in ("rewards", "dones"):
        assert getattr(batch, name).shape == (5,) and getattr(batch, name).dtype == torch.float32
    for name in ("terminations", "truncations"):
        assert getattr(batch, name).shape == (5,) and getattr(batch, name).dtype == torch.bool
    assert all(t.device.type == "cpu" for t in batch)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("storage_device", [None, "cuda"])
@pytest.mark.parametrize("optimize_memory", [False, True])
def test_samples_on_cuda(storage_device: str | None, optimize_memory: bool) -> None:
    buffer = _buffer(8, 2, device="cuda", storage_device=storage_device,
                     optimize_memory=optimize_memory)
    for t in range(5):
        _add(buffer, [t, t], [t + 1, t + 1], truncations=[t % 2, 0])
    batch = _sample_all(buffer)
    assert all(t.device.type == "cuda" for t in batch)
    assert torch.equal(batch.next_obs, batch.obs + 1)


@settings(max_examples=40, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    num_envs=st.integers(1, 3),
    rows=st.integers(1, 6),
    steps=st.integers(1, 25),
    end_prob=st.sampled_from([0.0, 0.3, 0.9]),
)
def test_optimize_memory_matches_plain_buffer(
    seed: int, num_envs: int, rows: int, steps: int, end_prob: float
) -> None:
    plain = _buffer(rows * num_envs, num_envs)
    compact = _buffer(rows * num_envs, num_envs, optimize_memory=True)
    stream = _random_stream(np.random.default_rng(seed), steps, num_envs, end_prob)
    for t, step in enumerate(stream):
        plain.add(*step)
        compact.add(*step)
        _assert_same_batch(_sample_all(plain, seed=t), _sample_all(compact, seed=t))
    assert len(compact) == len(plain)


def test_optimize_memory_uses_fewer_bytes() -> None:
    def make(optimize_memory: bool) -> ReplayBuffer:
        return ReplayBuffer(1000, (4, 84, 84), (), 4, obs_dtype=torch.uint8,
                            action_dtype=torch.int64, optimize_memory=optimize_memory)

    plain, compact = make(False), make(True)
    obs_bytes = 4 * 84 * 84
    assert plain.nbytes - compact.nbytes >= (1000 - 2 * 4) * obs_bytes - 8 * 1000
    rng = np.random.default_rng(0)
    for _ in range(300):  # about 30 episode ends in the buffer, so the side store grows
        ended = rng.random(4) < 0.03
        compact.add(np.zeros((4, 4, 84, 84), np.uint8), np.zeros((4, 4, 84, 84), np.uint8),
                    np.zeros(4, np.int64), np.zeros(4), ended, np.zeros(4, bool))
    assert compact.nbytes < 0.6 * plain.nbytes


def test_side_store_only_holds_ended_transitions_in_buffer() -> None:
    buffer = _buffer(20, 1, optimize_memory=True)
    empty_bytes = buffer.nbytes
    for t in range(200):  # 20 episodes end, at most 2 of them in the buffer at once
        _add(buffer, [t], [t + 1], terminations=[t % 10 == 9])
    obs_bytes = 4 * np.prod(OBS_SHAPE)
    assert buffer.nbytes - empty_bytes <= 3 * obs_bytes


def _round_trip(buffer: ReplayBuffer, **kwargs) -> ReplayBuffer:
    """Save and load ``buffer`` into another one that already holds different data."""
    file = io.BytesIO()
    torch.save(buffer.state_dict(), file)
    file.seek(0)
    state = torch.load(file, weights_only=True)
    restored = _buffer(buffer.capacity, buffer.num_envs, **kwargs)
    for step in _random_stream(np.random.default_rng(123), 15, buffer.num_envs, end_prob=0.5):
        restored.add(*step)
    restored.load_state_dict(state)
    return restored


@pytest.mark.parametrize("optimize_memory", [False, True])
@pytest.mark.parametrize("steps", [3, 10, 27])
def test_state_dict_round_trip_restores_sampling(optimize_memory: bool, steps: int) -> None:
    buffer = _buffer(30, 3, optimize_memory=optimize_memory)
    stream = _random_stream(np.random.default_rng(steps), steps + 10, 3, end_prob=0.3)
    for _ in range(steps):
        buffer.add(*next(stream))

    state = buffer.state_dict()
    assert all(len(state[k]) == min(steps, 10) for k in ("obs", "actions", "rewards"))
    restored = _round_trip(buffer, optimize_memory=optimize_memory)
    assert len(restored) == len(buffer) and restored.full == buffer.full
    _assert_same_batch(_sample_all(buffer, seed=1), _sample_all(restored, seed=1))

    for step in stream:  # both keep behaving alike, including across the wrap-around
        buffer.add(*step)
        restored.add(*step)
    _assert_same_batch(_sample_all(buffer, seed=2), _sample_all(restored, seed=2))


def test_load_state_dict_rejects_other_capacity() -> None:
    buffer = _buffer(6, 2)
    _add(buffer, [0, 1], [1, 2])
    with pytest.raises(ValueError):
        _buffer(8, 2).load_state_dict(buffer.state_dict())


def test_loaded_buffer_keeps_next_obs_when_new_episodes_follow() -> None:
    """After a resume the envs are reset: the next row's obs is not the stored row's next obs."""
    buffer = _buffer(12, 2, optimize_memory=True)
    _add(buffer, [0, 1], [10, 11])
    _add(buffer, [10, 11], [20, 21], terminations=[0, 1])
    restored = _round_trip(buffer, optimize_memory=True)
    _add(restored, [500, 501], [510, 511])  # freshly reset envs
    batch = _sample_all(restored)
    pairs = set(zip(batch.obs.flatten(1)[:, 0].tolist(), batch.next_obs.flatten(1)[:, 0].tolist()))
    assert pairs == {(0, 10), (1, 11), (10, 20), (11, 21), (500, 510), (501, 511)}
