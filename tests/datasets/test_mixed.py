"""MixedReplay: exact shares per batch, real transitions only, seeded, n-step and prioritized."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer
from pearll.datasets import MixedReplay
from tests.fixtures import TaggedEnv, make_env
from tests.reference import ReferenceBuffer, Runner

OFFLINE_TAG = 9


def filled(cls, num_envs, steps, tag=None, seed=0, **kwargs):
    env = TaggedEnv(tag=tag) if tag is not None else make_env(num_envs, AutoresetMode.NEXT_STEP)
    buffer = cls(env, 200, seed=seed, **kwargs)
    Runner(env, buffer, ReferenceBuffer(num_envs or 1, 200, True), seed=seed).add(steps)
    return buffer


def pairs(batch):
    """Each transition as a hashable (obs, next_obs, action) tuple."""
    return {
        (tuple(o), tuple(n), int(a))
        for o, n, a in zip(
            batch.observations, batch.next_observations, batch.actions[:, 0], strict=True
        )
    }


@settings(max_examples=30, deadline=None)
@given(
    num_envs=st.sampled_from([None, 2, 3]),
    fraction=st.sampled_from([0.0, 0.25, 0.5, 0.9, 1.0]),
    batch_size=st.integers(1, 70),
    seed=st.integers(0, 100),
)
def test_exact_shares_of_real_transitions(num_envs, fraction, batch_size, seed):
    offline = filled(ReplayBuffer, None, 50, tag=OFFLINE_TAG, seed=seed)
    online = filled(ReplayBuffer, num_envs, 40, seed=seed + 1)
    mixed = MixedReplay(offline, online, fraction, seed=seed)
    batch = mixed.sample(batch_size)
    n_offline = int(np.floor(batch_size * fraction + 0.5))
    assert batch.observations.shape == (batch_size, 3) and batch.rewards.shape == (batch_size, 1)
    tags = batch.observations[:, 0]
    assert (tags[:n_offline] == OFFLINE_TAG).all() and (tags[n_offline:] != OFFLINE_TAG).all()
    head = type(batch)(**{**vars(batch)})
    for name in ("observations", "next_observations", "actions"):
        setattr(head, name, getattr(batch, name)[:n_offline])
    assert pairs(head) <= pairs(offline.all())
    for name in ("observations", "next_observations", "actions"):
        setattr(head, name, getattr(batch, name)[n_offline:])
    assert pairs(head) <= pairs(online.all(flatten_env=True))


def test_seeded():
    def batches():
        offline = filled(ReplayBuffer, None, 50, tag=OFFLINE_TAG, seed=3)
        online = filled(ReplayBuffer, 3, 40, seed=4)
        mixed = MixedReplay(offline, online, 0.5, seed=5)
        return [mixed.sample(31) for _ in range(3)]

    for a, b in zip(batches(), batches(), strict=True):
        np.testing.assert_array_equal(a.observations, b.observations)
        np.testing.assert_array_equal(a.actions, b.actions)


def test_vector_share_spreads_over_sub_envs():
    offline = filled(ReplayBuffer, None, 50, tag=OFFLINE_TAG)
    online = filled(ReplayBuffer, 3, 60)
    mixed = MixedReplay(offline, online, 0.5, seed=0)
    tags = np.concatenate([mixed.sample(20).observations[10:, 0] for _ in range(300)])
    share = np.bincount(tags.astype(int), minlength=3) / len(tags)
    np.testing.assert_allclose(share, 1 / 3, atol=0.03)  # 10 of 3 x 4 drawn, chosen uniformly


def test_n_step_and_prioritized():
    offline = filled(ReplayBuffer, None, 50, tag=OFFLINE_TAG, n_step=3, gamma=0.9)
    online = filled(PrioritizedReplayBuffer, 2, 60, n_step=3, gamma=0.9, seed=1)
    mixed = MixedReplay(offline, online, 0.5, seed=0)
    assert mixed.prioritized
    batch = mixed.sample(64)
    assert batch.discounts.shape == (64, 1)
    np.testing.assert_array_equal(batch.indices[:32], -1)
    np.testing.assert_array_equal(batch.weights[:32], 1.0)
    assert (batch.indices[32:] >= offline.buffer_size).all()
    # A huge priority for one online transition: its sub-env's draws (half of the online
    # share: each sub-env is drawn from independently) are then almost all of it.
    favourite = batch.indices[40]
    priorities = np.zeros(64)
    priorities[40] = 1e6
    mixed.update_priorities(batch.indices, priorities)
    again = mixed.sample(64)
    assert (again.indices[32:] == favourite).sum() >= 15
    assert (again.observations[:32, 0] == OFFLINE_TAG).all()


def test_torch_output():
    torch = pytest.importorskip("torch")
    offline = filled(ReplayBuffer, None, 30, tag=OFFLINE_TAG)
    online = filled(ReplayBuffer, None, 30, seed=1)
    online._device_spec = "cpu"
    batch = MixedReplay(offline, online, 0.5).sample(8, dtype="torch")
    assert isinstance(batch.observations, torch.Tensor) and batch.observations.shape == (8, 3)


def test_bad_input_names_both_sides():
    offline = filled(ReplayBuffer, None, 30, tag=OFFLINE_TAG, n_step=3, gamma=0.9)
    online = filled(ReplayBuffer, 2, 30)
    with pytest.raises(ValueError, match="differ in n_step: offline has 3, online has None"):
        MixedReplay(offline, online)
    dict_online = ReplayBuffer(make_env(None, dict_obs=True), 10)
    with pytest.raises(ValueError, match="differ in observation space: offline has Box"):
        MixedReplay(filled(ReplayBuffer, None, 30, tag=OFFLINE_TAG), dict_online)
    with pytest.raises(ValueError, match=r"offline_fraction: expected a float in \[0, 1\]"):
        MixedReplay(filled(ReplayBuffer, None, 30, tag=1), online, 1.5)
    empty = MixedReplay(filled(ReplayBuffer, None, 30, tag=1), ReplayBuffer(make_env(2), 10))
    with pytest.raises(RuntimeError, match="holds no transition"):
        empty.sample(8)


def test_bad_priorities_change_nothing():
    offline = filled(PrioritizedReplayBuffer, None, 30, tag=OFFLINE_TAG)
    online = filled(PrioritizedReplayBuffer, None, 30, seed=1)
    mixed = MixedReplay(offline, online, 0.5, seed=0)
    batch = mixed.sample(8)
    before = (offline._tree.total().copy(), online._tree.total().copy())
    with pytest.raises(ValueError, match="finite reals >= 0"):
        mixed.update_priorities(batch.indices, [1.0] * 7 + [np.nan])
    with pytest.raises(ValueError, match="expected -1 or slots"):
        mixed.update_priorities(np.array([0, 10_000]), [1.0, 1.0])
    with pytest.raises(ValueError, match="priorities: expected shape"):
        mixed.update_priorities(batch.indices, [1.0])
    np.testing.assert_array_equal(offline._tree.total(), before[0])
    np.testing.assert_array_equal(online._tree.total(), before[1])
