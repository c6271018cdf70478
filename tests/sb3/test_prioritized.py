"""pearll.sb3.PrioritizedReplayBuffer: SB3-shaped prioritized samples and priority updates."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch as th
from stable_baselines3.common import buffers as sb3_buffers

from pearll.sb3 import PrioritizedReplayBuffer, PrioritizedReplayBufferSamples
from tests.fixtures import sb3_steps, sb3_vec_env


def filled(num_envs=1, steps=40, **kwargs):
    venv = sb3_vec_env(num_envs)
    buffer = PrioritizedReplayBuffer(
        200, venv.observation_space, venv.action_space, device="cpu", n_envs=num_envs,
        seed=0, **kwargs,
    )  # fmt: skip
    for obs, next_obs, action, reward, done, infos in sb3_steps(venv, steps):
        buffer.add(copy.deepcopy(obs), copy.deepcopy(next_obs), action, reward, done, infos)
    return buffer


def test_it_is_an_sb3_replay_buffer_with_weights_and_indices():
    buffer = filled(num_envs=2)
    assert isinstance(buffer, sb3_buffers.ReplayBuffer)
    batch = buffer.sample(10)
    assert isinstance(batch, PrioritizedReplayBufferSamples)
    assert batch.weights.shape == (10, 1) and batch.weights.dtype == th.float32
    assert batch.weights.device == buffer.device
    assert batch.indices.shape == (10,) and batch.indices.dtype == np.int64
    assert batch.observations.shape == (10, 3) and batch.discounts is None
    # Equal priorities: uniform, every weight 1.
    assert th.all(batch.weights == 1)


def test_priorities_steer_the_draws_and_weights_follow():
    buffer = filled(alpha=1.0, beta=1.0)
    everything = buffer.sample(256)
    favourite = int(everything.indices[0])
    priorities = np.where(everything.indices == favourite, 100.0, 0.0)
    buffer.update_priorities(everything.indices, th.as_tensor(-priorities)[:, None])  # |td|
    batch = buffer.sample(512)
    share = float(np.mean(batch.indices == favourite))
    # The favourite has priority 100 + eps, each other transition eps (1e-6) or the initial 1 if
    # never drawn: it takes nearly all draws, and the smallest weights.
    assert share > 0.9
    chosen = batch.weights[th.as_tensor(batch.indices == favourite)]
    others = batch.weights[th.as_tensor(batch.indices != favourite)]
    assert float(chosen.max()) < float(others.min()) if len(others) else True
    assert float(batch.weights.max()) <= 1.0


def test_weights_are_the_importance_weights():
    buffer = filled(alpha=1.0, beta=0.5, eps=0.0)
    rng = np.random.default_rng(0)
    count = buffer.size()
    batch = buffer.sample(64)
    buffer.update_priorities(batch.indices, rng.uniform(0.5, 2.0, 64))
    batch = buffer.sample(64)
    tree = buffer.pearll_buffer
    # Cross-check with pearll's own weights for the same slots: (N P(i))^-beta / max.
    priorities = tree._tree.get(np.zeros((1, 1), dtype=np.int64), batch.indices[None])[0]
    total, smallest = float(tree._tree.total()[0]), float(tree._tree.min()[0])
    expected = (count * priorities / total) ** -0.5 / (count * smallest / total) ** -0.5
    np.testing.assert_allclose(batch.weights.numpy()[:, 0], expected, rtol=1e-5)


def test_beta_anneals_over_beta_steps():
    buffer = filled(beta=0.4, beta_steps=10)
    assert buffer.beta == pytest.approx(0.4)
    for _ in range(5):
        buffer.sample(4)
    assert buffer.beta == pytest.approx(0.7)


def test_n_step_prioritized_samples_have_discounts():
    batch = filled(n_steps=3, gamma=0.5).sample(16)
    assert batch.discounts.shape == (16, 1)
    assert set(np.round(batch.discounts.numpy().ravel(), 6)) <= {0.5, 0.25, 0.125}


def test_bad_priorities_raise_and_change_nothing():
    buffer = filled()
    batch = buffer.sample(8)
    with pytest.raises(ValueError, match="priorities"):
        buffer.update_priorities(batch.indices, np.full(8, np.nan))
    assert th.all(buffer.sample(8).weights == 1)
