"""``add_batch_trajectories(episode_ends=...)``: an episode end with neither flag set.

Such an end must behave exactly as a truncation does (final observation kept, next step a new
episode, n-step returns and HER goals never crossing it), while the stored flags stay False.
So a buffer given ``episode_ends`` is compared with one given ``truncateds`` at the same steps.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer


class SpacesEnv:
    observation_space = spaces.Box(-1e6, 1e6, shape=(2,), dtype=np.float32)
    action_space = spaces.Discrete(3)


def episode_stream(lengths, rng):
    """Consecutive episodes, obs [episode, step], as add_batch_trajectories arguments."""
    obs, next_obs, last = [], [], []
    for i, length in enumerate(lengths):
        steps = np.arange(length + 1, dtype=np.float32)
        frames = np.stack([np.full(length + 1, i, np.float32), steps], axis=1)
        obs.append(frames[:-1])
        next_obs.append(frames[1:])
        last.append(np.eye(length, dtype=bool)[-1])
    total = sum(lengths)
    return (
        np.concatenate(obs), rng.integers(0, 3, total), rng.normal(size=total),
        np.concatenate(next_obs), np.concatenate(last),
    )  # fmt: skip


@settings(max_examples=40, deadline=None)
@given(
    lengths=st.lists(st.integers(1, 6), min_size=1, max_size=8),
    capacity=st.integers(2, 40),
    n_step=st.sampled_from([None, 1, 3]),
    prioritized=st.booleans(),
    seed=st.integers(0, 1000),
)
def test_same_as_truncation_but_flags_stay(lengths, capacity, n_step, prioritized, seed):
    obs, actions, rewards, next_obs, last = episode_stream(lengths, np.random.default_rng(seed))
    cls = PrioritizedReplayBuffer if prioritized else ReplayBuffer
    kwargs = {"n_step": n_step, "gamma": 0.9} if n_step else {}
    declared = cls(SpacesEnv(), capacity, seed=seed, **kwargs)
    truncated = cls(SpacesEnv(), capacity, seed=seed, **kwargs)
    no_flags = np.zeros(len(rewards), bool)
    declared.add_batch_trajectories(
        obs, actions, rewards, next_obs, no_flags, no_flags, episode_ends=last
    )
    truncated.add_batch_trajectories(obs, actions, rewards, next_obs, no_flags, last)
    assert len(declared) == len(truncated)
    assert not declared.truncateds.any()
    if not len(declared):  # an ended episode needs 3 rows: a ring of 2 holds none
        return
    for read in (lambda b: b.all(), lambda b: b.sample(16)):
        a, b = read(declared), read(truncated)
        for name in ("observations", "actions", "rewards", "next_observations", "dones"):
            np.testing.assert_array_equal(getattr(a, name), getattr(b, name), err_msg=name)
    # No transition joins two episodes: each next observation is its own episode's.
    got = declared.all()
    assert (got.next_observations[:, 0] == got.observations[:, 0]).all()


def test_several_calls_and_single_steps():
    buffer = ReplayBuffer(SpacesEnv(), 20)
    first = np.array([[0, 0], [0, 1]], np.float32)
    buffer.add_batch_trajectories(
        first[:1], [1], [0.5], first[1:], [False], [False], episode_ends=[True]
    )
    second = np.array([[1, 0], [1, 1]], np.float32)
    buffer.add_trajectory(second[0], 2, 1.0, second[1], False, False)
    got = buffer.all()
    np.testing.assert_array_equal(got.observations, [[0, 0], [1, 0]])
    np.testing.assert_array_equal(got.next_observations, [[0, 1], [1, 1]])


def test_refused_where_it_cannot_hold():
    obs = np.zeros((1, 4), np.float32)
    rollout = RolloutBuffer(gym.make("CartPole-v1"), 10)
    with pytest.raises(ValueError, match="not supported by RolloutBuffer"):
        rollout.add_batch_trajectories(obs, [0], [1.0], obs, [False], episode_ends=[True])
    vector = gym.make_vec("CartPole-v1", num_envs=2, vectorization_mode="sync")
    buffer = ReplayBuffer(vector, 10)
    with pytest.raises(ValueError, match="autoreset mode NEXT_STEP"):
        buffer.add_batch_trajectories(
            np.zeros((1, 2, 4), np.float32), [[0, 0]], [[1.0, 1.0]],
            np.zeros((1, 2, 4), np.float32), [[False, False]], episode_ends=[[True, False]],
        )  # fmt: skip
    assert len(buffer) == 0
    disabled = ReplayBuffer(vector, 10, autoreset_mode=AutoresetMode.DISABLED)
    disabled.add_batch_trajectories(
        np.zeros((1, 2, 4), np.float32), [[0, 0]], [[1.0, 1.0]],
        np.zeros((1, 2, 4), np.float32), [[False, False]], episode_ends=[[True, False]],
    )  # fmt: skip
    assert disabled.counts.tolist() == [1, 1]


def test_bad_shape_leaves_the_buffer_unchanged():
    buffer = ReplayBuffer(SpacesEnv(), 10)
    obs = np.zeros((2, 2), np.float32)
    with pytest.raises(ValueError, match=r"episode_ends: expected shape \(2, 1\) or \(2,\)"):
        buffer.add_batch_trajectories(obs, [0, 1], [1.0, 1.0], obs, [False] * 2, episode_ends=[1])
    assert len(buffer) == 0 and not buffer._ring.pos.any()


def test_not_an_extra_field_name():
    with pytest.raises(ValueError, match="'episode_ends' is not usable"):
        ReplayBuffer(SpacesEnv(), 10, extra_fields={"episode_ends": ((), np.float32)})
