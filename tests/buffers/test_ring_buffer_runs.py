"""Batch adds that write one run of rows (whole episodes) take slices instead of fancy indices:
the storage and bookkeeping they leave must be byte-identical to the fancy-index path's."""

from __future__ import annotations

from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers import HERBuffer, PrioritizedReplayBuffer, ReplayBuffer, ring_buffer
from pearll.buffers.ring import Ring
from pearll.buffers.ring_buffer import _as_slices
from pearll.envs import BitFlippingEnv
from tests.fixtures import make_env


def episodes_of(env, lengths_seed, count):
    """``count`` whole episodes of ``env`` (random actions), each a list of step tuples."""
    env.action_space.seed(lengths_seed)
    obs, _ = env.reset(seed=lengths_seed)
    episodes, steps = [], []
    while len(episodes) < count:
        action = env.action_space.sample()
        next_obs, reward, term, trunc, _ = env.step(action)
        steps.append((obs, action, reward, next_obs, term, trunc))
        obs = next_obs
        if term or trunc:
            episodes.append(steps)
            steps = []
            obs, _ = env.reset()
    return episodes


def stacked(steps, i):
    values = [s[i] for s in steps]
    if isinstance(values[0], dict):
        return {k: np.stack([v[k] for v in values]) for k in values[0]}
    return np.stack([np.asarray(v) for v in values])


@settings(max_examples=30, deadline=None)
@given(
    kind=st.sampled_from(["box", "dict", "her"]),
    capacity=st.integers(2, 25),
    count=st.integers(1, 8),
    seed=st.integers(0, 500),
    prioritized=st.booleans(),
)
def test_episode_batches_match_the_fancy_index_path(kind, capacity, count, seed, prioritized):
    if kind == "her":
        env, cls = BitFlippingEnv(n_bits=3), HERBuffer
    else:
        env = make_env(None, dict_obs=kind == "dict")
        cls = PrioritizedReplayBuffer if prioritized else ReplayBuffer
    episodes = episodes_of(env, seed, count)
    fancy, sliced = cls(env, capacity, seed=0), cls(env, capacity, seed=0)
    for steps in episodes:
        batch = [stacked(steps, i) for i in range(6)]
        with mock.patch.object(ring_buffer, "_as_slices", lambda plan: None):
            fancy.add_batch_trajectories(*batch)
        sliced.add_batch_trajectories(*batch)
    np.testing.assert_array_equal(sliced._packed.packed, fancy._packed.packed)
    for name in ("pos", "size", "valid", "count", "prev_ended"):
        np.testing.assert_array_equal(getattr(sliced._ring, name), getattr(fancy._ring, name))
    if prioritized and kind != "her":
        np.testing.assert_array_equal(sliced._tree.total(), fancy._tree.total())
    if kind == "her":
        np.testing.assert_array_equal(sliced._episodes.episode_of, fancy._episodes.episode_of)


def test_slices_only_for_one_run():
    ring = Ring.empty(10, 2, spare_rows=True)
    keep = np.ones((4, 1), bool)
    ended = np.zeros((4, 1), bool)
    single = Ring.empty(10, 1, spare_rows=True)
    assert _as_slices(single.plan(keep, ended)) == ((slice(0, 4), 0), (slice(0, 4), 0))
    ended[1] = True  # an episode end mid-batch leaves a row for its final observation
    assert _as_slices(single.plan(keep, ended)) is None
    assert _as_slices(ring.plan(np.ones((4, 2), bool), np.zeros((4, 2), bool))) is None
