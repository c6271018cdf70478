"""Bad input raises a clear error and leaves the buffer exactly as it was."""

from __future__ import annotations

import copy

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from pearll.buffers import ReplayBuffer, RolloutBuffer
from pearll.common.tree import tree_map
from tests.fixtures import make_env
from tests.reference import Runner

OBS = np.zeros(4, dtype=np.float32)


def snapshot(buffer):
    return copy.deepcopy((buffer._store.fields, buffer._ring, buffer.rng.bit_generator.state))


def assert_unchanged(buffer, before):
    storage, ring, rng_state = before
    for name, tree in storage.items():
        tree_map(np.testing.assert_array_equal, buffer._store.fields[name], tree)
    for name in ("pos", "size", "valid", "count", "prev_ended"):
        np.testing.assert_array_equal(getattr(buffer._ring, name), getattr(ring, name))
    assert buffer.rng.bit_generator.state == rng_state


@pytest.fixture(params=[ReplayBuffer, RolloutBuffer])
def cartpole_buffer(request):
    buffer = request.param(gym.make("CartPole-v1"), 8, seed=0)
    for step in range(3):
        buffer.add_trajectory(OBS + step, 1, 1.0, OBS + step + 1, False)
    return buffer


BAD_STEPS = [
    (dict(observation=np.zeros(5)), ValueError, r"observation: expected shape \(4,\), got \(5,\)"),
    (dict(next_observation=np.zeros((1, 4))), ValueError, r"expected shape \(4,\), got \(1, 4\)"),
    (dict(observation=np.array(["a"] * 4)), TypeError, "observation: expected values castable"),
    (dict(action=2), ValueError, r"action: \[2\] outside the space Discrete\(2\)"),
    (dict(action=-1), ValueError, "outside the space"),
    (dict(action=0.5), TypeError, "action: expected values castable to int64, got dtype float"),
    (dict(action=[0, 1]), ValueError, r"action: expected shape \(1,\) or \(\), got \(2,\)"),
    (dict(reward=[1.0, 2.0]), ValueError, r"reward: expected shape \(1,\) or \(\), got \(2,\)"),
    (dict(done="yes"), TypeError, "done: expected values castable to bool"),
    (dict(truncated=[True, False]), ValueError, "truncated: expected shape"),
]


@pytest.mark.parametrize(("change", "error", "message"), BAD_STEPS)
def test_bad_step_is_rejected_without_a_trace(cartpole_buffer, change, error, message):
    step = dict(observation=OBS, action=1, reward=1.0, next_observation=OBS + 1, done=False)
    step.update(change)
    before = snapshot(cartpole_buffer)
    with pytest.raises(error, match=message):
        cartpole_buffer.add_trajectory(**step)
    assert_unchanged(cartpole_buffer, before)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda b: b.sample(0), ValueError, "batch_size: expected a positive int, got 0"),
        (lambda b: b.sample(-3), ValueError, "got -3"),
        (lambda b: b.sample(2.5), TypeError, "batch_size: expected a positive int, got float"),
        (lambda b: b.last(0), ValueError, "batch_size"),
        (lambda b: b.last(4), ValueError, r"sub-envs \[0\] hold only \[3\]"),
        (lambda b: b.sample(2, dtype="jax"), ValueError, "dtype: expected one of 'numpy', 'torch'"),
        (lambda b: b.all(dtype="tensorflow"), ValueError, "got 'tensorflow'"),
    ],
)
def test_bad_read_is_rejected_without_a_trace(cartpole_buffer, call, error, message):
    before = snapshot(cartpole_buffer)
    with pytest.raises(error, match=message):
        call(cartpole_buffer)
    assert_unchanged(cartpole_buffer, before)


def test_rollout_sample_larger_than_stored_is_rejected():
    buffer = RolloutBuffer(gym.make("CartPole-v1"), 8, seed=0)
    buffer.add_trajectory(OBS, 1, 1.0, OBS, False)
    before = snapshot(buffer)
    with pytest.raises(ValueError, match="at most 1 here; got 2"):
        buffer.sample(2)
    assert_unchanged(buffer, before)


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, RolloutBuffer])
def test_sampling_an_empty_buffer_says_so(buffer_class):
    buffer = buffer_class(gym.make("CartPole-v1"), 8)
    for read in (lambda: buffer.sample(1), lambda: buffer.all(), lambda: buffer.last(1)):
        with pytest.raises((RuntimeError, ValueError), match=r"no transition|hold only"):
            read()


def test_vector_step_with_wrong_env_count_is_rejected():
    env = make_env(3)
    buffer = ReplayBuffer(env, 8)
    before = snapshot(buffer)
    obs = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"observation: expected shape \(3, 3\), got \(2, 3\)"):
        buffer.add_trajectory(obs, [0, 0], [0, 0], obs, [False] * 2)
    assert_unchanged(buffer, before)


def test_dict_observation_with_missing_key_is_rejected():
    env = make_env(None, dict_obs=True)
    buffer = ReplayBuffer(env, 8)
    before = snapshot(buffer)
    with pytest.raises(ValueError, match=r"expected a dict with keys \['parity', 'tag'\]"):
        buffer.add_trajectory({"tag": np.zeros(3)}, 0, 0.0, {"tag": np.zeros(3)}, False)
    assert_unchanged(buffer, before)


def test_same_step_end_without_final_obs_is_rejected():
    env = make_env(2, AutoresetMode.SAME_STEP)
    buffer = ReplayBuffer(env, 8)
    runner = Runner(env, buffer, _Discard(), seed=0)
    runner.add(3)
    before = snapshot(buffer)
    obs = np.zeros((2, 3), dtype=np.float32)
    with pytest.raises(ValueError, match=r"sub-envs \[1\] ended but info has no 'final_obs'"):
        buffer.add_trajectory(obs, [0, 0], [0, 0], obs, [False, True], info={})
    assert_unchanged(buffer, before)


def test_batch_with_mismatched_lengths_is_rejected():
    buffer = ReplayBuffer(gym.make("CartPole-v1"), 8)
    before = snapshot(buffer)
    obs = np.zeros((4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match=r"action: expected shape \(4, 1\) or \(4,\), got \(3,\)"):
        buffer.add_batch_trajectories(obs, np.zeros(3, int), np.zeros(4), obs, np.zeros(4, bool))
    with pytest.raises(ValueError, match="rewards: expected a leading time axis"):
        buffer.add_batch_trajectories(obs, np.zeros(4, int), 1.0, obs, np.zeros(4, bool))
    assert_unchanged(buffer, before)


class _Discard:
    def add(self, env, transition):
        pass
