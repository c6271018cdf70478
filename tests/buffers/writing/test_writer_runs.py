"""Batch adds that write one run of rows (whole episodes) take slices instead of fancy indices:
the storage and bookkeeping they leave must be byte-identical to the fancy-index path's."""

from __future__ import annotations

from unittest import mock

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers import HERBuffer, PrioritizedReplayBuffer, ReplayBuffer
from pearll.buffers.core.ring import Ring
from pearll.buffers.writing import writer
from pearll.buffers.writing.writer import _slice_runs
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


@settings(max_examples=40, deadline=None)
@given(
    kind=st.sampled_from(["box", "dict", "her"]),
    capacity=st.integers(3, 25),
    count=st.integers(1, 8),
    per_batch=st.integers(1, 4),
    min_run=st.sampled_from([1, 2, 32]),
    seed=st.integers(0, 500),
    prioritized=st.booleans(),
)
def test_batches_of_episodes_match_the_fancy_index_path(
    kind, capacity, count, per_batch, min_run, seed, prioritized
):
    if kind == "her":
        env, cls = BitFlippingEnv(n_bits=3), HERBuffer
    else:
        env = make_env(None, dict_obs=kind == "dict")
        cls = PrioritizedReplayBuffer if prioritized else ReplayBuffer
    episodes = episodes_of(env, seed, count)
    fancy, sliced = cls(env, capacity, seed=0), cls(env, capacity, seed=0)
    for first in range(0, count, per_batch):  # per_batch whole episodes per add
        steps = [step for episode in episodes[first : first + per_batch] for step in episode]
        batch = [stacked(steps, i) for i in range(6)]
        with mock.patch.object(writer, "_slice_runs", lambda plan: None):
            fancy.add_batch_trajectories(*batch)
        with mock.patch.object(writer, "MIN_RUN_STEPS", min_run):
            sliced.add_batch_trajectories(*batch)
    np.testing.assert_array_equal(sliced._store.packed.packed, fancy._store.packed.packed)
    for name in ("pos", "size", "valid", "count", "prev_ended"):
        np.testing.assert_array_equal(getattr(sliced._ring, name), getattr(fancy._ring, name))
    if prioritized and kind != "her":
        np.testing.assert_array_equal(sliced._tree.total(), fancy._tree.total())
    if kind == "her":
        np.testing.assert_array_equal(sliced._episodes.episode_of, fancy._episodes.episode_of)


def test_runs_are_whole_episodes():
    single = Ring.empty(100, 1, spare_rows=True)
    keep, ended = np.ones((80, 1), bool), np.zeros((80, 1), bool)
    assert _slice_runs(single.plan(keep, ended)) == [((slice(0, 80), 0), (slice(0, 80), 0))]
    ended[39] = True  # an end leaves a row for the final observation: the next run starts after
    assert _slice_runs(single.plan(keep, ended)) == [
        ((slice(0, 40), 0), (slice(0, 40), 0)),
        ((slice(40, 80), 0), (slice(41, 81), 0)),
    ]
    ended[::4] = True  # runs of 4 steps: too short, one scatter instead
    assert _slice_runs(single.plan(keep, ended)) is None
    vector = Ring.empty(100, 2, spare_rows=True)  # steps alternate between sub-envs
    assert _slice_runs(vector.plan(np.ones((80, 2), bool), np.zeros((80, 2), bool))) is None
