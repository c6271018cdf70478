"""PrioritizedDQN: importance-weighted Huber loss and |TD| priority updates."""

from __future__ import annotations

import numpy as np
import pytest
import torch as th
import torch.nn.functional as F
from stable_baselines3.common import buffers as sb3_buffers

from pearll.sb3 import PrioritizedDQN, PrioritizedReplayBuffer, ReplayBuffer
from tests.fixtures import sb3_vec_env


def model(**kwargs):
    return PrioritizedDQN(
        "MlpPolicy", sb3_vec_env(1), learning_starts=50, buffer_size=1_000, batch_size=16,
        seed=0, device="cpu", **kwargs,
    )  # fmt: skip


def test_default_buffer_is_prioritized_and_learning_updates_priorities():
    agent = model(replay_buffer_kwargs={"alpha": 0.6, "beta": 0.4})
    assert agent.replay_buffer_class is PrioritizedReplayBuffer
    agent.learn(200)
    weights = agent.replay_buffer.sample(64).weights
    assert float(weights.min()) < 1.0  # priorities are no longer all equal


def test_loss_is_the_weighted_huber_loss_and_priorities_are_abs_td(monkeypatch):
    agent = model()
    agent.learn(60)
    batch = agent.replay_buffer.sample(16)
    weights = th.linspace(0.1, 1.0, 16)[:, None]
    batch = batch._replace(weights=weights)
    monkeypatch.setattr(agent.replay_buffer, "sample", lambda *a, **k: batch)
    updates = []
    monkeypatch.setattr(
        agent.replay_buffer, "update_priorities", lambda i, td: updates.append((i, td))
    )
    with th.no_grad():
        next_q = agent.q_net_target(batch.next_observations).max(dim=1)[0].reshape(-1, 1)
        target = batch.rewards + (1 - batch.dones) * agent.gamma * next_q
        current = th.gather(agent.q_net(batch.observations), 1, batch.actions.long())
    expected = (weights * F.smooth_l1_loss(current, target, reduction="none")).mean()
    agent.train(gradient_steps=1, batch_size=16)
    assert agent.logger.name_to_value["train/loss"] == pytest.approx(float(expected), rel=1e-5)
    indices, td = updates[0]
    np.testing.assert_array_equal(indices, batch.indices)
    np.testing.assert_allclose(td.numpy(), (current - target).abs().numpy(), rtol=1e-5)


def test_a_buffer_without_priorities_is_refused():
    with pytest.raises(TypeError, match="prioritized"):
        model(replay_buffer_class=ReplayBuffer)
    assert issubclass(PrioritizedReplayBuffer, sb3_buffers.ReplayBuffer)


def test_dqns_n_steps_reach_the_default_buffer():
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        agent = model(n_steps=3)
    assert agent.replay_buffer.n_steps == 3
    agent.learn(60)
    assert agent.replay_buffer.sample(8).discounts.shape == (8, 1)
