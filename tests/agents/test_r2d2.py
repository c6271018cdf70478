"""The recurrent DQN trainer: runs on both replay buffers, sends sequence priorities back."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pearll.agents.r2d2 import R2D2Config, RecurrentQNetwork, train_r2d2  # noqa: E402
from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer  # noqa: E402
from pearll.envs.cartpole_pomdp import cartpole_no_velocity  # noqa: E402
from tests.torch_threads import one_torch_thread  # noqa: E402, F401

FAST = R2D2Config(learning_starts=100, batch_size=8, length=5, burn_in=3, hidden_size=16)


def test_the_env_hides_the_velocities():
    env = cartpole_no_velocity()
    observation, _ = env.reset(seed=0)
    assert observation.shape == (2,) and env.observation_space.shape == (2,)


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, PrioritizedReplayBuffer])
def test_trains_and_logs_episodes(buffer_class):
    env = cartpole_no_velocity()
    buffer = buffer_class(env, 1_000, seed=0)
    before = [p.detach().clone() for p in RecurrentQNetwork(2, 2, 16).parameters()]
    torch.manual_seed(0)
    result = train_r2d2(env, buffer, 300, FAST, seed=0)
    assert result.env_steps == 300 and result.episodes
    after = list(result.q_network.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    if buffer_class is PrioritizedReplayBuffer:
        rows = buffer._ring.ordered_rows(0)
        priorities = buffer._tree.get(np.zeros_like(rows), rows)
        assert len(np.unique(priorities)) > 10  # sequence priorities came back


def test_callback_stops_training():
    env = cartpole_no_velocity()
    result = train_r2d2(env, ReplayBuffer(env, 500, seed=0), 10_000, FAST, callback=lambda r: True)
    assert len(result.episodes) == 1
