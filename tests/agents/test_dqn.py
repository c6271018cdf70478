"""The DQN trainer: works with every replay buffer, uses optional batch fields, learns with HER."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pearll.agents.dqn import (  # noqa: E402
    DQNConfig,
    EpisodeRecord,
    evaluate_dqn,
    policy_input,
    train_dqn,
)
from pearll.buffers import HERBuffer, ReplayBuffer  # noqa: E402
from pearll.common.type_aliases import Trajectories  # noqa: E402
from pearll.envs import BitFlippingEnv  # noqa: E402
from tests.torch_threads import one_torch_thread  # noqa: E402, F401

FAST = DQNConfig(learning_starts=50, batch_size=16, hidden_sizes=(16,))


def test_cartpole_with_replay_buffer_logs_episodes():
    env = gym.make("CartPole-v1")
    result = train_dqn(env, ReplayBuffer(env, 500, seed=0), 300, FAST, seed=0)
    assert result.env_steps == 300 and result.episodes
    steps = [record.env_steps for record in result.episodes]
    assert steps == sorted(steps) and steps[-1] <= 300
    assert all(record.success is None for record in result.episodes)
    assert result.q_network(torch.zeros(1, 4)).shape == (1, 2)


def test_callback_sees_every_episode_and_can_stop_training():
    env = BitFlippingEnv(3)
    seen: list[EpisodeRecord] = []
    result = train_dqn(
        env, HERBuffer(env, 500, seed=0), 400, FAST, seed=0,
        callback=lambda record: seen.append(record) or len(seen) == 5,
    )  # fmt: skip
    assert seen == result.episodes and len(seen) == 5
    assert all(isinstance(record.success, bool) for record in seen)


def test_her_learns_small_bit_flipping():
    config = DQNConfig(hidden_sizes=(64,), gamma=0.98, learning_starts=200, train_frequency=2)
    env = BitFlippingEnv(4)
    result = train_dqn(env, HERBuffer(env, 2000, seed=0), 1500, config, seed=0)
    evaluation = evaluate_dqn(BitFlippingEnv(4), result.q_network, 50, seed=100)
    assert np.mean([record.success for record in evaluation]) >= 0.9


@dataclass
class ExtendedTrajectories(Trajectories):
    discounts: Any = None
    weights: Any = None
    indices: Any = None


class PrioritizedStub(ReplayBuffer):
    """A ReplayBuffer whose batches carry n-step discounts, weights and indices."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.updates: list[tuple[np.ndarray, np.ndarray]] = []

    def sample(self, batch_size, flatten_env=False, dtype="numpy"):
        batch = super().sample(batch_size)
        return ExtendedTrajectories(
            batch.observations, batch.actions, batch.rewards, batch.next_observations,
            batch.dones, discounts=np.full_like(batch.rewards, 0.5),
            weights=np.ones_like(batch.rewards), indices=np.arange(batch_size),
        )  # fmt: skip

    def update_priorities(self, indices, priorities):
        self.updates.append((indices, priorities))


def test_prioritized_fields_are_used():
    env = gym.make("CartPole-v1")
    buffer = PrioritizedStub(env, 500, seed=0)
    train_dqn(env, buffer, 120, FAST, seed=0)
    assert buffer.updates
    indices, priorities = buffer.updates[0]
    assert priorities.shape == indices.shape == (16,) and (priorities > 0).all()


def test_policy_input_concatenates_observation_and_goal():
    obs = {
        "observation": np.ones((2, 3)),
        "achieved_goal": np.zeros((2, 3)),
        "desired_goal": 2 * np.ones((2, 3)),
    }
    features = policy_input(obs, batch_dims=1)
    assert features.dtype == np.float32 and features.shape == (2, 6)
    assert features[0].tolist() == [1, 1, 1, 2, 2, 2]
    assert policy_input(np.zeros((2, 2))).shape == (4,)


@pytest.mark.parametrize(
    ("make_env", "total_steps", "match"),
    [
        (lambda: gym.make("Pendulum-v1"), 10, "Discrete"),
        (lambda: gym.make_vec("CartPole-v1", num_envs=2), 10, "vector"),
        (lambda: gym.make("CartPole-v1"), 0, "total_steps"),
    ],
)
def test_bad_setup_says_what_was_expected(make_env, total_steps, match):
    env = make_env()
    with pytest.raises(ValueError, match=match):
        train_dqn(env, None, total_steps)


def test_goal_dict_without_desired_goal_is_rejected():
    with pytest.raises(ValueError, match="desired_goal"):
        policy_input({"observation": np.zeros(2)})
