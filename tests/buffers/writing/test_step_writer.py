"""The hot path (StepWriter) writes exactly what the general path writes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers import HERBuffer, PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer
from tests.buffers.core.test_spaces import SpacesEnv
from tests.buffers.test_her import goal_env
from tests.fixtures import MODES, K, make_env, stacked_env
from tests.reference import ReferenceBuffer, Runner

RING_FIELDS = ("pos", "size", "valid", "count", "prev_ended")


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, RolloutBuffer, PrioritizedReplayBuffer])
@pytest.mark.parametrize("num_envs", [None, 3, 8])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dict_obs", [False, True])
@given(
    capacity=st.integers(4, 12),
    steps=st.integers(1, 40),
    seed=st.integers(0, 1000),
    max_len=st.integers(1, 5),
)
@settings(max_examples=15, deadline=None)
def test_hot_path_writes_the_same_bytes_and_bookkeeping(
    buffer_class, num_envs, mode, dict_obs, capacity, steps, seed, max_len
):
    if num_envs is None and mode is not MODES[0]:
        return  # a single env has no autoreset mode
    make = lambda: make_env(num_envs, mode, max_len=max_len, dict_obs=dict_obs)  # noqa: E731
    assert_same_state(*run_both_paths(make, buffer_class, capacity, steps, seed))


@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("mode", MODES)
@given(
    capacity=st.integers(4, 12),
    steps=st.integers(1, 40),
    seed=st.integers(0, 1000),
    max_len=st.integers(1, 5),
)
@settings(max_examples=15, deadline=None)
def test_her_adds_take_the_hot_path_and_keep_the_same_episode_index(
    num_envs, mode, capacity, steps, seed, max_len
):
    if num_envs is None and mode is not MODES[0]:
        return
    make = lambda: goal_env(num_envs, mode, max_len=max_len)  # noqa: E731
    fast, general = run_both_paths(make, HERBuffer, capacity, steps, seed)
    assert_same_state(fast, general)
    for name in ("written", "current", "episode_of", "final_row"):
        np.testing.assert_array_equal(getattr(fast._episodes, name),
                                      getattr(general._episodes, name))  # fmt: skip


def run_both_paths(make_env_fn, buffer_class, capacity, steps, seed):
    """Two buffers fed the same ``steps`` env steps: one by the hot path, one by the general.

    Asserts that the hot path took every step it was given but the SAME_STEP ones without a
    final observation (there are none here) and NEXT_STEP reset steps (it takes those too).
    """
    buffers = []
    for use_hot_path in (True, False):
        env = make_env_fn()
        buffer = buffer_class(env, capacity, seed=0)
        assert buffer._fast_writer is not None
        taken = []
        if use_hot_path:
            buffer._fast_writer.try_add = _counting(buffer._fast_writer.try_add, taken)
        else:
            buffer._fast_writer = None
        num_envs = getattr(env, "num_envs", 1)
        Runner(env, buffer, ReferenceBuffer(num_envs, capacity, True), seed).add(steps)
        assert all(taken), f"the hot path declined {taken.count(False)} of {len(taken)} steps"
        buffers.append(buffer)
    return buffers


def _counting(try_add, taken):
    def counted(*args):
        taken.append(try_add(*args))
        return taken[-1]

    return counted


def assert_same_state(fast, general):
    np.testing.assert_array_equal(fast._store.packed.packed, general._store.packed.packed)
    fast_frames, general_frames = fast._store.frames, general._store.frames
    if fast_frames is not None:
        np.testing.assert_array_equal(fast_frames.frames, general_frames.frames)
        np.testing.assert_array_equal(fast_frames.episode_step, general_frames.episode_step)
    for name in RING_FIELDS:
        np.testing.assert_array_equal(getattr(fast._ring, name), getattr(general._ring, name))
    if isinstance(fast, PrioritizedReplayBuffer):
        np.testing.assert_array_equal(fast._tree._sums, general._tree._sums)
        np.testing.assert_array_equal(fast._tree._mins, general._tree._mins)


ACTION_SPACES = [
    spaces.Discrete(4, start=-1),
    spaces.MultiDiscrete([3, 4]),
    spaces.MultiBinary(3),
    spaces.Box(-2.0, 2.0, shape=(2,), dtype=np.float32),
    spaces.Box(-5, 5, shape=(2,), dtype=np.int32),
]
# Whole 8-byte words of observation (copied as words) and 3 bytes (copied byte by byte).
OBSERVATION_SPACES = [
    spaces.Box(-10.0, 10.0, shape=(4,), dtype=np.float32),
    spaces.Box(0, 255, shape=(3,), dtype=np.uint8),
]


def random_action(rng, space, lead, single):
    """An action in a random dtype, in the space's range, or (one time in four) maybe just out
    of it or NaN."""
    margin = int(rng.random() < 0.25)
    if isinstance(space, spaces.Box) and space.dtype.kind == "f":
        action = rng.uniform(space.low - margin / 2, space.high + margin / 2, lead + space.shape)
        if margin and rng.random() < 0.2:
            action[...] = np.nan
        return action.astype(rng.choice([np.float16, np.float32, np.float64]))
    if isinstance(space, spaces.Discrete):
        low, high = space.start, space.start + space.n - 1
    elif isinstance(space, spaces.MultiDiscrete):
        low, high = 0, space.nvec - 1
    elif isinstance(space, spaces.MultiBinary):
        low, high = 0, 1
    else:
        low, high = space.low, space.high
    action = rng.integers(low - margin, high + 1 + margin, lead + space.shape)
    if single and space.shape == () and rng.random() < 0.5:
        return int(action)  # a Python int, as a policy often gives
    dtypes = [np.int8, np.int16, np.int64, np.uint8, np.uint64]
    if rng.random() < 0.1:  # floats: exact integers are stored, fractions refused, by both
        return action.astype(np.float64) + (rng.random() < 0.5) * 0.25
    return action.astype(rng.choice(dtypes))


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, RolloutBuffer, PrioritizedReplayBuffer])
@pytest.mark.parametrize("action_space", ACTION_SPACES, ids=str)
@pytest.mark.parametrize("observation_space", OBSERVATION_SPACES, ids=str)
@pytest.mark.parametrize("num_envs", [None, 8])
@given(seed=st.integers(0, 1000), capacity=st.integers(4, 9))
@settings(max_examples=5, deadline=None)
def test_both_paths_agree_on_every_space_and_input_dtype(
    buffer_class, action_space, observation_space, num_envs, seed, capacity
):
    # The same random inputs, in and out of range, to a buffer with and without the hot path:
    # the same bytes, bookkeeping, and errors (type and message).
    env = SpacesEnv(observation_space, action_space, num_envs)
    buffers = [buffer_class(env, capacity, seed=0) for _ in range(2)]
    assert buffers[0]._fast_writer is not None
    buffers[1]._fast_writer = None
    rng = np.random.default_rng(seed)
    single = num_envs is None
    lead = () if single else (num_envs,)
    obs_dtype = observation_space.dtype
    for _ in range(30):
        obs, next_obs = (rng.integers(0, 10, lead + observation_space.shape).astype(obs_dtype)
                         for _ in range(2))  # fmt: skip
        if obs_dtype == np.float32 and rng.random() < 0.3:
            next_obs = next_obs.astype(np.float64)  # cast on the way in, by both paths
        form = rng.integers(5)
        if form == 0:  # exact integers as floats, or (one time in two) a fraction
            obs = obs.astype(np.float64) + (rng.random() < 0.5) * 0.5
        elif form == 1:  # int64, in the field's range or (for uint8) maybe past it
            next_obs = next_obs.astype(np.int64) + (rng.random() < 0.5) * 250
        action = random_action(rng, action_space, lead, single)
        reward = float(rng.normal()) if single else rng.normal(size=lead)
        done, trunc = (rng.random(lead or None) < 0.2 for _ in range(2))
        if single:
            done, trunc = bool(done), bool(trunc)
        errors = []
        for buffer in buffers:
            try:
                buffer.add_trajectory(obs, action, reward, next_obs, done, trunc)
                errors.append(None)
            except (TypeError, ValueError) as error:
                errors.append((type(error), str(error)))
        assert errors[0] == errors[1]
    assert_same_state(*buffers)


def test_the_ring_arrays_the_kernel_writes_by_address_are_never_rebound():
    # The kernel keeps the addresses of the Ring's arrays: every path updates them in place.
    env = SpacesEnv(OBSERVATION_SPACES[0], spaces.Discrete(3), num_envs=2)
    obs, flags, ends = np.zeros((2, 4), np.float32), np.zeros(2, bool), np.ones(2, bool)
    for buffer in (ReplayBuffer(env, 8), RolloutBuffer(env, 8)):
        ring = buffer._ring
        arrays = (ring.pos, ring.size, ring.valid, ring.count, ring.prev_ended)
        for t in range(12):  # wraps, with episode ends, both paths
            buffer.add_trajectory(obs + t, np.array([0, 2]), np.ones(2), obs + t + 1, flags,
                                  ends if t % 5 == 4 else flags)  # fmt: skip
            buffer.add_batch_trajectories(
                (obs + t)[None], np.array([[1, 1]]), np.ones((1, 2)), (obs + t + 1)[None],
                flags[None],
            )  # fmt: skip
        buffer.clear() if isinstance(buffer, RolloutBuffer) else buffer.reset()
        assert buffer._ring is ring
        for before, now in zip(
            arrays, (ring.pos, ring.size, ring.valid, ring.count, ring.prev_ended), strict=True
        ):
            assert now is before


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, PrioritizedReplayBuffer])
@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("shape", [(2, 3), (2, 4)], ids=["bytes", "words"])
@given(
    capacity=st.integers(K + 2, 14),
    steps=st.integers(1, 40),
    seed=st.integers(0, 1000),
    max_len=st.integers(1, 7),
)
@settings(max_examples=15, deadline=None)
def test_hot_path_writes_the_same_frames_depths_and_bookkeeping(
    buffer_class, num_envs, mode, shape, capacity, steps, seed, max_len
):
    if num_envs is None and mode is not MODES[0]:
        return  # a single env has no autoreset mode
    make = lambda: stacked_env(num_envs, mode, max_len=max_len, shape=shape)  # noqa: E731
    fast, general = run_both_paths(make, buffer_class, capacity, steps, seed)
    assert fast.frame_stack.size == K
    assert_same_state(fast, general)


EXTRA_FIELDS = {
    "log_prob": ((), np.float32),
    "value": ((2,), np.float64),
    "index": ((), np.int32),
    "option": ((), np.int8),
}


def _extra_value(rng, dtype, shape):
    """A value for an extra field, in one of the forms callers pass (some of them wrong)."""
    values = rng.normal(size=shape) * 3
    form = rng.integers(7)
    if form == 0:
        return values.astype(dtype)  # exact
    if form == 1:
        return values  # float64 (refused for an integer field: fractions)
    if form == 5:
        return np.round(values) * (100 if rng.random() < 0.3 else 1)  # exact (or past int8)
    if form == 2:
        return values.astype(np.int16)  # castable for every field
    if form == 3 and shape == ():
        return np.float32(values) if np.dtype(dtype).kind == "f" else np.int8(values)
    if form == 4:
        return np.zeros((*shape, 2))  # wrong shape
    if form == 6:
        return float(values.flat[0]) if shape == () else values.tolist()  # Python values
    return values.astype(dtype)


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, RolloutBuffer, PrioritizedReplayBuffer])
@pytest.mark.parametrize("num_envs", [None, 3])
@given(steps=st.integers(1, 30), seed=st.integers(0, 1000))
@settings(max_examples=15, deadline=None)
def test_hot_path_writes_extra_fields_as_the_general_path(buffer_class, num_envs, steps, seed):
    env = make_env(num_envs, MODES[0])
    fast, general = (buffer_class(env, 9, seed=0, extra_fields=EXTRA_FIELDS) for _ in range(2))
    assert fast._fast_writer is not None
    general._fast_writer = None
    rng = np.random.default_rng(seed)
    lead = (num_envs,) if num_envs else ()
    for _ in range(steps):
        obs, next_obs = (rng.normal(size=(*lead, 3)).astype(np.float32) for _ in range(2))
        action = rng.integers(0, 3, size=lead) if num_envs else int(rng.integers(0, 3))
        done, trunc = (rng.random(lead) < 0.2 for _ in range(2))
        if not num_envs:
            done, trunc = bool(done), bool(trunc)
        extras = {
            name: _extra_value(rng, dtype, (*lead, *shape))
            for name, (shape, dtype) in EXTRA_FIELDS.items()
        }
        errors = []
        for buffer in (fast, general):
            try:
                buffer.add_trajectory(obs, action, 1.0 if not num_envs else np.ones(lead),
                                      next_obs, done, trunc, **extras)  # fmt: skip
                errors.append(None)
            except (TypeError, ValueError) as error:
                errors.append((type(error), str(error)))
        assert errors[0] == errors[1]
    assert_same_state(fast, general)


def test_hot_path_is_used_only_where_it_applies():
    cartpole = gym.make("CartPole-v1")
    assert ReplayBuffer(cartpole, 10)._fast_writer is not None
    assert RolloutBuffer(cartpole, 10)._fast_writer is not None
    assert PrioritizedReplayBuffer(cartpole, 10)._fast_writer is not None
    assert ReplayBuffer(cartpole, 3)._fast_writer is None
    assert ReplayBuffer(make_env(2), 10)._fast_writer is not None
    assert ReplayBuffer(make_env(None, dict_obs=True), 10)._fast_writer is not None
    assert HERBuffer(goal_env(2, MODES[1]), 10)._fast_writer is not None
    assert (
        RolloutBuffer(cartpole, 10, extra_fields={"v": ((), np.float32)})._fast_writer is not None
    )


@pytest.mark.parametrize(
    ("step", "stored"),
    [
        ((np.zeros(4), 1, 1.0, np.ones(4), False), True),  # float64 into float32: general path
        (([0.0] * 4, 1, 1.0, [1.0] * 4, False), True),  # lists: general path
        ((np.zeros(4, np.float32), np.array([1]), 1, np.ones(4, np.float32), 0), True),
    ],
)
def test_inputs_the_hot_path_declines_still_work(step, stored):
    buffer = ReplayBuffer(gym.make("CartPole-v1"), 10)
    buffer.add_trajectory(*step)
    assert len(buffer) == int(stored)
    np.testing.assert_array_equal(buffer.all().next_observations, [[1.0] * 4])


def test_bad_action_on_the_hot_path_is_still_rejected():
    buffer = ReplayBuffer(gym.make("CartPole-v1"), 10)
    obs = np.zeros(4, np.float32)
    for bad in (2, -1, 0.5, np.nan, np.int64(5), np.uint64(2**64 - 1)):
        with pytest.raises((ValueError, TypeError)):
            buffer.add_trajectory(obs, bad, 1.0, obs, False)
    assert len(buffer) == 0


@pytest.mark.parametrize("num_envs", [None, 2])
def test_hot_path_writes_into_the_ring_that_replaced_the_old_one(tmp_path, num_envs):
    # clear(), reset() and load() give the buffer a new ring; adds must land in it.
    env = make_env(num_envs, AutoresetMode.DISABLED)  # every step is a transition
    buffer = RolloutBuffer(env, 8)
    runner = Runner(env, buffer, ReferenceBuffer(num_envs or 1, 8, False), seed=0)
    runner.add(3)
    buffer.clear()
    runner.add(2)
    assert buffer.counts.tolist() == [2] * (num_envs or 1)
    buffer.reset()
    runner.add(1)
    assert len(buffer) == (num_envs or 1)
    buffer.save(tmp_path / "ckpt")
    runner.buffer = RolloutBuffer.load(tmp_path / "ckpt", env=env)
    runner.add(1)
    assert len(runner.buffer) == 2 * (num_envs or 1)


def test_the_kernel_is_compiled_at_the_first_add_not_at_construction():
    # A buffer only loaded and sampled never compiles (or loads) the write kernel.
    buffer = ReplayBuffer(gym.make("CartPole-v1"), 10)
    writer = buffer._fast_writer
    assert writer._write_step == writer._compile_write_step
    obs = np.zeros(4, np.float32)
    buffer.add_trajectory(obs, 1, 1.0, obs + 1, False)
    assert writer._write_step != writer._compile_write_step and len(buffer) == 1
    buffer.add_trajectory(obs + 1, 0, 1.0, obs + 2, False)
    np.testing.assert_array_equal(buffer.all().next_observations[:, 0], [1.0, 2.0])
