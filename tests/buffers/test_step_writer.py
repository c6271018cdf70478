"""The hot path (StepWriter) writes exactly what the general path writes."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer
from tests.fixtures import MODES, make_env
from tests.reference import ReferenceBuffer, Runner

RING_FIELDS = ("pos", "size", "valid", "count", "prev_ended")


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, RolloutBuffer, PrioritizedReplayBuffer])
@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("mode", MODES)
@given(
    capacity=st.integers(4, 12),
    steps=st.integers(1, 40),
    seed=st.integers(0, 1000),
    max_len=st.integers(1, 5),
)
@settings(max_examples=15, deadline=None)
def test_hot_path_writes_the_same_bytes_and_bookkeeping(
    buffer_class, num_envs, mode, capacity, steps, seed, max_len
):
    if num_envs is None and mode is not MODES[0]:
        return  # a single env has no autoreset mode
    buffers = []
    for use_hot_path in (True, False):
        env = make_env(num_envs, mode, max_len=max_len)
        buffer = buffer_class(env, capacity, seed=0)
        assert buffer._fast_writer is not None
        if not use_hot_path:
            buffer._fast_writer = None
        Runner(env, buffer, ReferenceBuffer(num_envs or 1, capacity, True), seed).add(steps)
        buffers.append(buffer)
    fast, general = buffers
    np.testing.assert_array_equal(fast._packed.packed, general._packed.packed)
    for name in RING_FIELDS:
        np.testing.assert_array_equal(getattr(fast._ring, name), getattr(general._ring, name))
    if buffer_class is PrioritizedReplayBuffer:
        np.testing.assert_array_equal(fast._tree._sums, general._tree._sums)
        np.testing.assert_array_equal(fast._tree._mins, general._tree._mins)


def test_hot_path_is_used_only_where_it_applies():
    cartpole = gym.make("CartPole-v1")
    assert ReplayBuffer(cartpole, 10)._fast_writer is not None
    assert RolloutBuffer(cartpole, 10)._fast_writer is not None
    assert PrioritizedReplayBuffer(cartpole, 10)._fast_writer is not None
    assert ReplayBuffer(cartpole, 3)._fast_writer is None
    assert ReplayBuffer(make_env(2), 10)._fast_writer is not None
    assert ReplayBuffer(make_env(None, dict_obs=True), 10)._fast_writer is None
    assert RolloutBuffer(cartpole, 10, extra_fields={"v": ((), np.float32)})._fast_writer is None


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
    for bad in (2, -1, 1.0, np.int64(5)):
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
