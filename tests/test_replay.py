from __future__ import annotations

import io

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.wrappers import FrameStackObservation
from hypothesis import given, settings
from hypothesis import strategies as st

from rlrun.data.replay import (
    CompactReplayBuffer,
    FrameStackReplayBuffer,
    ReplayBatch,
    ReplayBuffer,
    ReplayStorage,
)

OBS_SHAPE = (2, 3)


def _buffer(capacity: int, num_envs: int, compact: bool = False, **kwargs) -> ReplayStorage:
    storage = CompactReplayBuffer if compact else ReplayBuffer
    return storage(capacity, OBS_SHAPE, (1,), num_envs, **kwargs)


def _obs(values: list[float] | np.ndarray) -> np.ndarray:
    """One observation per value, every entry equal to it."""
    return np.repeat(np.asarray(values, np.float32), np.prod(OBS_SHAPE)).reshape(-1, *OBS_SHAPE)


def _add(
    buffer: ReplayStorage,
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


def _sample_all(buffer: ReplayStorage, seed: int = 0) -> ReplayBatch:
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


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("num_envs", [1, 2])
def test_wrap_around_overwrites_oldest(num_envs: int, compact: bool) -> None:
    buffer = _buffer(6, num_envs, compact=compact)
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


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("later_steps", [0, 1, 3])
def test_truncation_bootstraps_and_termination_does_not(compact: bool, later_steps: int) -> None:
    """Env 0 continues, env 1 is truncated, env 2 terminates, with final obs 101 and 102."""
    buffer = _buffer(8 * 3, 3, compact=compact)
    _add(buffer, [0, 1, 2], [10, 101, 102], terminations=[0, 0, 1], truncations=[0, 1, 0])
    for t in range(later_steps):  # after its reset env 1 observes 11, not its final obs 101
        base = 10 * (t + 1)
        _add(buffer, [base, base + 1, base + 2], [base + 10, base + 11, base + 12])

    batch = _sample_all(buffer)
    by_obs = {int(o): i for i, o in enumerate(batch.obs.flatten(1)[:, 0].tolist())}
    for obs, next_obs, terminated in [(0, 10, 0.0), (1, 101, 0.0), (2, 102, 1.0)]:
        i = by_obs[obs]
        assert batch.next_obs[i].eq(next_obs).all()
        assert batch.terminations[i].item() == terminated


STORAGES = [ReplayBuffer, CompactReplayBuffer, FrameStackReplayBuffer]


@pytest.mark.parametrize("storage", STORAGES, ids=lambda storage: storage.__name__)
def test_sample_shapes_and_dtypes(storage: type[ReplayStorage]) -> None:
    obs_shape = (4, 7, 7)
    buffer = storage(16, obs_shape, (), 4, obs_dtype=torch.uint8, action_dtype=torch.int64)
    for _ in range(3):
        buffer.add(
            np.ones((4, *obs_shape), np.uint8), np.ones((4, *obs_shape), np.uint8),
            np.arange(4), np.ones(4, np.float32), np.zeros(4, bool), np.zeros(4, bool),
        )
    batch = buffer.sample(5)
    assert batch.obs.shape == batch.next_obs.shape == (5, *obs_shape)
    assert batch.obs.dtype == batch.next_obs.dtype == torch.uint8
    assert batch.actions.shape == (5,) and batch.actions.dtype == torch.int64
    for name in ("rewards", "terminations"):
        assert getattr(batch, name).shape == (5,) and getattr(batch, name).dtype == torch.float32
    assert all(t.device.type == "cpu" for t in batch)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("storage_device", [None, "cuda"])
@pytest.mark.parametrize("compact", [False, True])
def test_samples_on_cuda(storage_device: str | None, compact: bool) -> None:
    buffer = _buffer(8, 2, device="cuda", storage_device=storage_device, compact=compact)
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
def test_compact_matches_plain_buffer(
    seed: int, num_envs: int, rows: int, steps: int, end_prob: float
) -> None:
    plain = _buffer(rows * num_envs, num_envs)
    compact = _buffer(rows * num_envs, num_envs, compact=True)
    stream = _random_stream(np.random.default_rng(seed), steps, num_envs, end_prob)
    for t, step in enumerate(stream):
        plain.add(*step)
        compact.add(*step)
        _assert_same_batch(_sample_all(plain, seed=t), _sample_all(compact, seed=t))
    assert len(compact) == len(plain)


def test_compact_uses_fewer_bytes() -> None:
    def make(storage: type[ReplayStorage]) -> ReplayStorage:
        return storage(1000, (4, 84, 84), (), 4, obs_dtype=torch.uint8, action_dtype=torch.int64)

    plain, compact = make(ReplayBuffer), make(CompactReplayBuffer)
    obs_bytes = 4 * 84 * 84
    assert plain.nbytes - compact.nbytes >= (1000 - 2 * 4) * obs_bytes - 8 * 1000
    rng = np.random.default_rng(0)
    for _ in range(300):  # about 30 episode ends in the buffer, so the side store grows
        ended = rng.random(4) < 0.03
        compact.add(np.zeros((4, 4, 84, 84), np.uint8), np.zeros((4, 4, 84, 84), np.uint8),
                    np.zeros(4, np.int64), np.zeros(4), ended, np.zeros(4, bool))
    assert compact.nbytes < 0.6 * plain.nbytes


def test_side_store_only_holds_ended_transitions_in_buffer() -> None:
    buffer = _buffer(20, 1, compact=True)
    empty_bytes = buffer.nbytes
    for t in range(200):  # 20 episodes end, at most 2 of them in the buffer at once
        _add(buffer, [t], [t + 1], terminations=[t % 10 == 9])
    obs_bytes = 4 * np.prod(OBS_SHAPE)
    assert buffer.nbytes - empty_bytes <= 3 * obs_bytes


def _round_trip(buffer: ReplayStorage) -> ReplayStorage:
    """Save and load ``buffer`` into another one that already holds different data."""
    file = io.BytesIO()
    torch.save(buffer.state_dict(), file)
    file.seek(0)
    state = torch.load(file, weights_only=True)
    restored = type(buffer)(buffer.capacity, OBS_SHAPE, (1,), buffer.num_envs)
    for step in _random_stream(np.random.default_rng(123), 15, buffer.num_envs, end_prob=0.5):
        restored.add(*step)
    restored.load_state_dict(state)
    return restored


@pytest.mark.parametrize("compact", [False, True])
@pytest.mark.parametrize("steps", [3, 10, 27])
def test_state_dict_round_trip_restores_sampling(compact: bool, steps: int) -> None:
    buffer = _buffer(30, 3, compact=compact)
    stream = _random_stream(np.random.default_rng(steps), steps + 10, 3, end_prob=0.3)
    for _ in range(steps):
        buffer.add(*next(stream))

    state = buffer.state_dict()
    assert all(len(state[k]) == min(steps, 10) for k in ("obs", "actions", "rewards"))
    restored = _round_trip(buffer)
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
    buffer = _buffer(12, 2, compact=True)
    _add(buffer, [0, 1], [10, 11])
    _add(buffer, [10, 11], [20, 21], terminations=[0, 1])
    restored = _round_trip(buffer)
    _add(restored, [500, 501], [510, 511])  # freshly reset envs
    batch = _sample_all(restored)
    pairs = set(zip(batch.obs.flatten(1)[:, 0].tolist(), batch.next_obs.flatten(1)[:, 0].tolist()))
    assert pairs == {(0, 10), (1, 11), (10, 20), (11, 21), (500, 510), (501, 511)}


# frame_stack: stacks of FRAME_SHAPE frames from gymnasium's FrameStackObservation.
STACK, FRAME_SHAPE = 4, (6, 6)


class _RandomFrames(gym.Env):
    """Random uint8 frames, or one of ``distinct`` uniform frames; episodes of 1 to 5 steps,
    ended by termination or truncation at random."""

    action_space = gym.spaces.Discrete(3)
    observation_space = gym.spaces.Box(0, 255, FRAME_SHAPE, np.uint8)

    def __init__(self, distinct: int | None) -> None:
        self.distinct = distinct

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._left = int(self.np_random.integers(1, 6))
        return self._frame(), {}

    def step(self, action: int):
        self._left -= 1
        ended = self._left == 0
        truncated = ended and bool(self.np_random.random() < 0.5)
        reward = float(self.np_random.standard_normal())
        return self._frame(), reward, ended and not truncated, truncated, {}

    def _frame(self) -> np.ndarray:
        if self.distinct is None:
            return self.np_random.integers(0, 256, FRAME_SHAPE, dtype=np.uint8)
        return np.full(FRAME_SHAPE, self.np_random.integers(self.distinct), np.uint8)


def _frame_envs(seed: int, num_envs: int, distinct: int | None = None) -> list[gym.Env]:
    envs = [FrameStackObservation(_RandomFrames(distinct), STACK) for _ in range(num_envs)]
    for i, env in enumerate(envs):
        env.reset(seed=seed + i)
    return envs


def _frame_stream(envs: list[gym.Env], seed: int, steps: int, reset_prob: float = 0.0):
    """Vector steps of freshly reset ``envs`` with same-step autoreset, as ``add`` takes them;
    with ``reset_prob`` an env also starts a new episode where the last did not end."""
    rng = np.random.default_rng(seed)
    obs = np.stack([env.reset()[0] for env in envs])
    for _ in range(steps):
        actions = rng.integers(0, 3, len(envs))
        steps_ = [env.step(a) for env, a in zip(envs, actions, strict=True)]
        next_obs = np.stack([step[0] for step in steps_])
        terminations = np.array([step[2] for step in steps_])
        truncations = np.array([step[3] for step in steps_])
        rewards = np.array([step[1] for step in steps_], np.float32)
        yield obs, next_obs, actions, rewards, terminations, truncations
        obs = next_obs.copy()
        for i, env in enumerate(envs):
            if terminations[i] or truncations[i] or rng.random() < reset_prob:
                obs[i] = env.reset()[0]


def _frame_buffer(capacity: int, num_envs: int, frame_stack: bool, **kwargs) -> ReplayStorage:
    storage = FrameStackReplayBuffer if frame_stack else ReplayBuffer
    return storage(capacity, (STACK, *FRAME_SHAPE), (), num_envs, obs_dtype=torch.uint8,
                   action_dtype=torch.int64, **kwargs)


def _frame_buffers(capacity: int, num_envs: int) -> tuple[ReplayStorage, ReplayStorage]:
    """A plain buffer and a frame-stack one."""
    return _frame_buffer(capacity, num_envs, False), _frame_buffer(capacity, num_envs, True)


# With 2 distinct frames stacks often look fresh mid-episode, and continued after a reset.
@pytest.mark.parametrize("distinct", [None, 2])
@pytest.mark.parametrize("reset_prob", [0.0, 0.2])
@pytest.mark.parametrize("num_envs, rows", [(1, 1), (1, 6), (3, 2), (3, 7)])
def test_frame_stack_matches_plain_buffer(
    num_envs: int, rows: int, reset_prob: float, distinct: int | None
) -> None:
    plain, stacked = _frame_buffers(rows * num_envs, num_envs)
    seed = 10 * rows + num_envs
    steps = 4 * rows + 24  # wraps around several times
    counts = np.zeros(3, int)  # terminations, truncations, episodes of one step
    envs = _frame_envs(seed, num_envs, distinct)
    for t, step in enumerate(_frame_stream(envs, seed, steps, reset_prob)):
        plain.add(*step)
        stacked.add(*step)
        ended, fresh = step[4] | step[5], (step[0] == step[0][:, -1:]).all(axis=(1, 2, 3))
        counts += [step[4].sum(), step[5].sum(), (ended & fresh).sum()]
        assert (len(stacked), stacked.full) == (len(plain), plain.full)
        _assert_same_batch(_sample_all(plain, seed=t), _sample_all(stacked, seed=t))
        batch = stacked.sample(7, torch.Generator().manual_seed(t))  # the RNG use of plain's
        _assert_same_batch(plain.sample(7, torch.Generator().manual_seed(t)), batch)
    assert counts.min() > 0


@settings(max_examples=30, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    num_envs=st.integers(1, 3),
    rows=st.integers(1, 8),
    steps=st.integers(1, 40),
    reset_prob=st.sampled_from([0.0, 0.3]),
)
def test_frame_stack_matches_plain_buffer_anywhere(
    seed: int, num_envs: int, rows: int, steps: int, reset_prob: float
) -> None:
    plain, stacked = _frame_buffers(rows * num_envs, num_envs)
    for step in _frame_stream(_frame_envs(seed, num_envs), seed, steps, reset_prob):
        plain.add(*step)
        stacked.add(*step)
    _assert_same_batch(_sample_all(plain, seed=seed), _sample_all(stacked, seed=seed))


def _saved_and_loaded(state: dict) -> dict:
    file = io.BytesIO()
    torch.save(state, file)
    file.seek(0)
    return torch.load(file, weights_only=True)


@pytest.mark.parametrize("resume", ["replayed", "reset"])
@pytest.mark.parametrize("steps", [0, 3, 10, 27])
def test_frame_stack_state_dict_round_trip(steps: int, resume: str) -> None:
    """Envs either continue their episodes after the resume or start new ones."""
    plain, stacked = _frame_buffers(30, 3)
    envs = _frame_envs(steps, 3)
    stream = _frame_stream(envs, steps, steps + 25)
    for _ in range(steps):
        step = next(stream)
        plain.add(*step)
        stacked.add(*step)

    state = _saved_and_loaded(stacked.state_dict())
    assert "obs" not in state and "next_obs" not in state
    assert state["frames"].shape[1:] == (3, *FRAME_SHAPE)
    assert len(state["frames"]) == (min(steps + 1, 10 + STACK) if steps else 0)
    restored = _frame_buffer(30, 3, True)
    for step in _frame_stream(_frame_envs(99, 3), 99, 15, reset_prob=0.3):
        restored.add(*step)  # different data, overwritten by the load
    restored.load_state_dict(state)
    assert (len(restored), restored.full) == (len(plain), plain.full)
    if steps:
        _assert_same_batch(_sample_all(plain, seed=1), _sample_all(restored, seed=1))

    if resume == "reset":
        stream = _frame_stream(_frame_envs(500, 3), 500, 25)
    for t, step in enumerate(stream):  # including the wrap-around
        plain.add(*step)
        restored.add(*step)
        _assert_same_batch(_sample_all(plain, seed=t), _sample_all(restored, seed=t))


def test_frame_stack_refuses_observations_that_are_not_frame_stacks() -> None:
    rng = np.random.default_rng(0)
    buffer = _frame_buffer(8, 2, True)
    obs = rng.integers(0, 256, (2, STACK, *FRAME_SHAPE), dtype=np.uint8)
    next_obs = np.concatenate([obs[:, 1:], obs[:, :1]], 1)
    flags = np.zeros(2, bool)
    with pytest.raises(ValueError, match=r"envs \[0, 1\] neither continue"):
        buffer.add(obs, next_obs, np.zeros(2), np.zeros(2), flags, flags)
    fresh = np.repeat(obs[:, -1:], STACK, 1)
    with pytest.raises(ValueError, match="shifted by one frame"):
        buffer.add(fresh, obs, np.zeros(2), np.zeros(2), flags, flags)
    assert len(buffer) == 0

    shifted = np.concatenate([fresh[:, 1:], obs[:, :1]], 1)
    buffer.add(fresh, shifted, np.zeros(2), np.zeros(2), flags, flags)
    later = shifted.copy()
    later[1, 0] += 1  # env 1 does not continue its episode, nor starts a new one
    later_next = np.concatenate([later[:, 1:], obs[:, :1]], 1)
    with pytest.raises(ValueError, match=r"envs \[1\] neither continue"):
        buffer.add(later, later_next, np.zeros(2), np.zeros(2), flags, flags)
    assert len(buffer) == 2


def test_frame_stack_stores_each_frame_once() -> None:
    kwargs = {"obs_dtype": torch.uint8, "action_dtype": torch.int64}
    frames = FrameStackReplayBuffer.required_bytes(1_000_000, (4, 84, 84), (), 1, **kwargs)
    stacks = CompactReplayBuffer.required_bytes(1_000_000, (4, 84, 84), (), 1, **kwargs)
    # 1M frames of 84 * 84 bytes, then 23 bytes of action, reward, flags, counts per transition
    assert 7.056e9 < frames < 7.08e9 and 28.2e9 < stacks < 28.3e9
    for storage in STORAGES:
        buffer = storage(40, (STACK, *FRAME_SHAPE), (), 4, **kwargs)
        assert buffer.nbytes == storage.required_bytes(40, (STACK, *FRAME_SHAPE), (), 4, **kwargs)
    with pytest.raises(ValueError, match="one-hot"):
        FrameStackReplayBuffer.required_bytes(40, (STACK, *FRAME_SHAPE), (), 4, one_hot=(3,))


def test_frame_stack_side_store_only_holds_ended_transitions_in_buffer() -> None:
    buffer = _frame_buffer(300, 1, True)
    empty_bytes, ended = buffer.nbytes, []
    for step in _frame_stream(_frame_envs(0, 1), 0, 900):  # a third of the transitions end
        buffer.add(*step)
        ended.append(bool(step[4][0] or step[5][0]))
    most = max(sum(ended[t - 300 : t]) for t in range(300, 901))
    assert 2 * most < 300  # the side store holds most, grown to at most twice as many
    assert empty_bytes < buffer.nbytes <= empty_bytes + (2 * most - 1) * np.prod(FRAME_SHAPE)


def test_dqn_stores_frame_stacks_frame_by_frame() -> None:
    from rlrun.data.replay import make_replay

    def replay(shape: tuple[int, ...], dtype: type) -> ReplayStorage:
        class Envs:
            num_envs = 2
            single_observation_space = gym.spaces.Box(0, 1, shape, dtype)
            single_action_space = gym.spaces.Discrete(2)

        return make_replay(100, Envs, torch.device("cpu"))

    frames, ram, vectors = replay((4, 84, 84), np.uint8), replay((128,), np.uint8), replay(
        (4,), np.float32
    )
    assert type(frames) is FrameStackReplayBuffer
    assert type(ram) is CompactReplayBuffer
    assert type(vectors) is ReplayBuffer


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("storage_device", [None, "cuda"])
def test_frame_stack_samples_on_cuda(storage_device: str | None) -> None:
    plain = _frame_buffer(12, 2, False)
    stacked = _frame_buffer(12, 2, True, device="cuda", storage_device=storage_device)
    for t, step in enumerate(_frame_stream(_frame_envs(0, 2), 0, 20, reset_prob=0.2)):
        plain.add(*step)
        stacked.add(*step)
        batch = _sample_all(stacked, seed=t)
        assert all(x.device.type == "cuda" for x in batch)
        _assert_same_batch(_sample_all(plain, seed=t), ReplayBatch(*(x.cpu() for x in batch)))
    restored = _frame_buffer(12, 2, True, device="cuda", storage_device=storage_device)
    restored.load_state_dict(_saved_and_loaded(stacked.state_dict()))
    _assert_same_batch(_sample_all(stacked, seed=1), _sample_all(restored, seed=1))


# one_hot: observations made of one-hot segments (flattened Discrete, MultiDiscrete, Tuple/Dict).
ONE_HOT_SIZES = [(5,), (3, 4, 2), (300,)]  # uint8 and int16 indices


def _one_hots(rng: np.random.Generator, sizes: tuple[int, ...], num_envs: int) -> np.ndarray:
    return np.concatenate(
        [np.eye(n, dtype=np.float32)[rng.integers(n, size=num_envs)] for n in sizes], axis=1
    )


def _one_hot_stream(seed: int, sizes: tuple[int, ...], steps: int, num_envs: int):
    """Consistent vector-env steps of one-hot observations; each env terminates every 5 steps
    and is truncated every 7 (after its first ones at steps 3 and 1 at the latest)."""
    rng = np.random.default_rng(seed)
    obs = _one_hots(rng, sizes, num_envs)
    for t in range(steps):
        next_obs = _one_hots(rng, sizes, num_envs)
        phase = t + np.arange(num_envs)
        terminations, truncations = phase % 5 == 3, phase % 7 == 1
        yield (obs, next_obs, rng.integers(0, 4, num_envs), rng.standard_normal(num_envs),
               terminations, truncations)
        ended = (terminations | truncations)[:, None]
        obs = np.where(ended, _one_hots(rng, sizes, num_envs), next_obs)


def _one_hot_buffer(capacity: int, num_envs: int, sizes: tuple[int, ...] | None,
                    obs_size: int, compact: bool = False, **kwargs) -> ReplayStorage:
    storage = CompactReplayBuffer if compact else ReplayBuffer
    return storage(capacity, (obs_size,), (), num_envs, action_dtype=torch.int64, one_hot=sizes,
                   **kwargs)


@pytest.mark.parametrize("compact_storage", [False, True])
@pytest.mark.parametrize("sizes", ONE_HOT_SIZES, ids=str)
@pytest.mark.parametrize("num_envs, rows", [(1, 1), (1, 5), (3, 4)])
def test_one_hot_indices_sample_as_the_plain_buffer(
    num_envs: int, rows: int, sizes: tuple[int, ...], compact_storage: bool
) -> None:
    plain = _one_hot_buffer(rows * num_envs, num_envs, None, sum(sizes))
    compact = _one_hot_buffer(rows * num_envs, num_envs, sizes, sum(sizes),
                              compact=compact_storage)
    for t, step in enumerate(_one_hot_stream(rows, sizes, 4 * rows + 12, num_envs)):
        plain.add(*step)
        compact.add(*step)
        assert (len(compact), compact.full) == (len(plain), plain.full)
        batch = _sample_all(compact, seed=t)
        assert batch.obs.dtype == batch.next_obs.dtype == torch.float32
        _assert_same_batch(_sample_all(plain, seed=t), batch)
        _assert_same_batch(plain.sample(7, torch.Generator().manual_seed(t)),
                           compact.sample(7, torch.Generator().manual_seed(t)))
    stored = compact.state_dict()["obs"]
    assert stored.shape[-1] == len(sizes)
    assert stored.dtype == (torch.uint8 if max(sizes) <= 256 else torch.int16)


@pytest.mark.parametrize("steps", [3, 10, 27])
def test_one_hot_state_dict_round_trip_and_float_states_load(steps: int) -> None:
    """A compact state, and a state of float one-hots (a plain buffer's, as checkpoints held
    them before), load into a compact buffer that then samples as the plain buffer does."""
    sizes, capacity, num_envs = (3, 4, 2), 30, 3
    plain = _one_hot_buffer(capacity, num_envs, None, 9)
    compact = _one_hot_buffer(capacity, num_envs, sizes, 9)
    stream = _one_hot_stream(steps, sizes, steps + 25, num_envs)
    for _ in range(steps):
        step = next(stream)
        plain.add(*step)
        compact.add(*step)
    state = _saved_and_loaded(compact.state_dict())
    assert state["obs"].dtype == state["next_obs"].dtype == torch.uint8
    assert state["obs"].shape == (min(steps, 10), num_envs, len(sizes))
    restored = []
    for loaded in (state, _saved_and_loaded(plain.state_dict())):
        buffer = _one_hot_buffer(capacity, num_envs, sizes, 9)
        for step in _one_hot_stream(99, sizes, 12, num_envs):
            buffer.add(*step)  # different data, overwritten by the load
        buffer.load_state_dict(loaded)
        restored.append(buffer)
    for t, step in enumerate(stream):  # including the wrap-around
        for buffer in (plain, *restored):
            buffer.add(*step)
        for buffer in restored:
            assert (len(buffer), buffer.full) == (len(plain), plain.full)
            _assert_same_batch(_sample_all(plain, seed=t), _sample_all(buffer, seed=t))


@pytest.mark.parametrize(
    "bad", [[1, 1, 0, 0, 0, 1, 0], [0, 0, 0, 0, 0, 1, 0], [1, 0, 1, 0, 0, 0, 0],
            [0.5, 0, 0, 0, 0, 1, 0], [2, 0, 0, 0, 0, 1, 0]],
    ids=["two ones", "none", "same segment", "half", "two"],
)
def test_one_hot_buffer_refuses_other_observations(bad: list[float]) -> None:
    buffer = _one_hot_buffer(8, 2, (3, 4), 7)
    good = np.array([[0, 1, 0, 0, 0, 0, 1], [1, 0, 0, 1, 0, 0, 0]], np.float32)
    buffer.add(good, good, np.zeros(2), np.zeros(2), np.zeros(2, bool), np.zeros(2, bool))
    obs = np.stack([good[0], np.array(bad, np.float32)])
    for args in ((obs, good), (good, obs)):
        with pytest.raises(ValueError, match=r"one-hot in each segment of sizes \(3, 4\)"):
            buffer.add(*args, np.zeros(2), np.zeros(2), np.zeros(2, bool), np.zeros(2, bool))
    assert len(buffer) == 2
    with pytest.raises(ValueError, match="do not add up"):
        _one_hot_buffer(8, 2, (3, 4), 8)


@pytest.mark.parametrize(
    "size, dtype",
    [(1, torch.uint8), (256, torch.uint8), (257, torch.int16), (2**15, torch.int16),
     (2**15 + 1, torch.int32), (2**31, torch.int32), (2**31 + 1, torch.int64)],
)
def test_indices_take_the_smallest_integer_dtype(size: int, dtype: torch.dtype) -> None:
    from rlrun.data.one_hot import index_dtype

    assert index_dtype(size) == dtype


def test_one_hot_indices_cut_the_required_bytes() -> None:
    kwargs = {"action_dtype": torch.int64}
    floats = ReplayBuffer.required_bytes(1_000_000, (500,), (), 1, **kwargs)
    indices = ReplayBuffer.required_bytes(1_000_000, (500,), (), 1, one_hot=(500,), **kwargs)
    # Taxi: obs and next obs of 500 float32 (4,000 bytes) become two int16 (4 bytes); actions,
    # rewards and flags take 14 bytes either way.
    assert (floats, indices) == (4_014_000_000, 18_000_000)
    for sizes, compact in [((500,), False), ((3, 4, 2), False), ((3, 4, 2), True)]:
        buffer = _one_hot_buffer(40, 4, sizes, sum(sizes), compact=compact)
        assert buffer.nbytes == type(buffer).required_bytes(40, (sum(sizes),), (), 4,
                                                            one_hot=sizes, **kwargs)


def test_replay_of_discrete_observations_stores_indices() -> None:
    from rlrun.config import EnvConfig
    from rlrun.data.replay import make_replay
    from rlrun.envs.factory import make_vec_env

    envs = make_vec_env(EnvConfig(id="Taxi-v4"), 2)
    replay = make_replay(1000, envs, torch.device("cpu"))
    obs = envs.reset(seed=0)
    for _ in range(3):
        step = envs.step(np.zeros(2, np.int64))
        replay.add(obs, step.final_obs, np.zeros(2, np.int64), step.rewards, step.terminations,
                   step.truncations)
        obs = step.obs
    stored = replay.state_dict()["obs"]
    assert stored.shape == (3, 2, 1) and stored.dtype == torch.int16
    batch = replay.sample(16)
    assert batch.obs.shape == (16, 500) and (batch.obs.sum(1) == 1).all()
    envs.close()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA is not available")
@pytest.mark.parametrize("storage_device", [None, "cuda"])
def test_one_hot_samples_on_cuda(storage_device: str | None) -> None:
    sizes = (3, 300)
    plain = _one_hot_buffer(12, 2, None, 303)
    compact = _one_hot_buffer(12, 2, sizes, 303, device="cuda", storage_device=storage_device)
    for t, step in enumerate(_one_hot_stream(0, sizes, 20, 2)):
        plain.add(*step)
        compact.add(*step)
        batch = _sample_all(compact, seed=t)
        assert all(x.device.type == "cuda" for x in batch)
        _assert_same_batch(_sample_all(plain, seed=t), ReplayBatch(*(x.cpu() for x in batch)))
    restored = _one_hot_buffer(12, 2, sizes, 303, device="cuda", storage_device=storage_device)
    restored.load_state_dict(_saved_and_loaded(compact.state_dict()))
    _assert_same_batch(_sample_all(compact, seed=1), _sample_all(restored, seed=1))
