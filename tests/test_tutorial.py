"""The seed tutorial's code, run against pearll with gymnasium's 5-tuple step API swapped in."""

from __future__ import annotations

from typing import Union

import gymnasium as gym
import numpy as np
import torch as T

from pearll.buffers import BaseBuffer, ReplayBuffer, RolloutBuffer
from pearll.common.enumerations import TrajectoryType
from pearll.common.type_aliases import Observation, Trajectories


class YourBuffer(BaseBuffer):
    # As in the tutorial, the BaseBuffer __init__ creates the arrays and checks the memory.
    def __init__(
        self,
        env: gym.Env,
        buffer_size: int,
        device: Union[str, T.device] = "auto",  # noqa: UP007 (the tutorial's spelling)
    ) -> None:
        super().__init__(
            env,
            buffer_size,
            device,
        )

    def reset():
        super().reset()

    def add_trajectory(
        self,
        observation: Observation,
        action: Union[np.ndarray, int],  # noqa: UP007
        reward: Union[float, np.ndarray],  # noqa: UP007
        next_observation: Observation,
        done: Union[bool, np.ndarray],  # noqa: UP007
    ) -> None:
        pass

    def sample(
        self,
        batch_size: int,
        flatten_env: bool = False,
        dtype: Union[str, TrajectoryType] = "numpy",  # noqa: UP007
    ) -> Trajectories:
        pass

    def last(
        self,
        batch_size: int,
        flatten_env: bool = False,
        dtype: Union[str, TrajectoryType] = "numpy",  # noqa: UP007
    ) -> Trajectories:
        pass

    def all(
        self,
        flatten_env: bool = False,
        dtype: Union[str, TrajectoryType] = "numpy",  # noqa: UP007
    ) -> Trajectories:
        pass


def test_base_buffer_allocates_the_tutorial_shapes(capsys):
    env = gym.make("CartPole-v1")
    buffer = YourBuffer(env=env, buffer_size=10)
    print(f"Buffer observation array shape = {buffer.observations.shape}")
    print(f"Buffer action array shape = {buffer.actions.shape}")
    print(f"Buffer reward array shape = {buffer.rewards.shape}")
    print(f"Buffer done array shape = {buffer.dones.shape}")
    assert capsys.readouterr().out.splitlines() == [
        "Buffer observation array shape = (10, 4)",
        "Buffer action array shape = (10, 1)",
        "Buffer reward array shape = (10, 1)",
        "Buffer done array shape = (10, 1)",
    ]


def run_tutorial_cell(buffer_class):
    """The tutorial's Replay/Rollout cell; only ``env.reset``/``env.step`` follow gymnasium 1.x."""
    env = gym.make("CartPole-v1")
    buffer = buffer_class(env=env, buffer_size=5)
    added = []
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        action = env.action_space.sample()
        next_obs, reward, terminated, _truncated, _ = env.step(action)
        buffer.add_trajectory(obs, action, reward, next_obs, terminated)
        added.append(Trajectories(obs, action, reward, next_obs, terminated))
        obs = next_obs
    trajectories = buffer.sample(batch_size=5)
    sampled = [
        Trajectories(
            trajectories.observations[i],
            trajectories.actions[i],
            trajectories.rewards[i],
            trajectories.next_observations[i],
            trajectories.dones[i],
        )
        for i in range(5)
    ]
    return added, sampled


def key(t: Trajectories) -> tuple:
    return (tuple(np.ravel(t.observations)), int(np.ravel(t.actions)[0]))


def test_replay_buffer_cell_samples_added_transitions():
    added, sampled = run_tutorial_cell(ReplayBuffer)
    # A ReplayBuffer of 5 rows keeps 4 transitions: one row holds the newest next observation.
    by_key = {key(t): t for t in added[1:]}
    for t in sampled:
        original = by_key[key(t)]
        np.testing.assert_array_equal(t.next_observations, original.next_observations)
        assert float(t.rewards[0]) == original.rewards
        assert bool(t.dones[0]) == original.dones


def test_rollout_buffer_cell_samples_in_order():
    added, sampled = run_tutorial_cell(RolloutBuffer)
    for got, want in zip(sampled, added, strict=True):
        np.testing.assert_array_equal(got.observations, want.observations)
        np.testing.assert_array_equal(got.next_observations, want.next_observations)
        assert int(got.actions[0]) == want.actions
