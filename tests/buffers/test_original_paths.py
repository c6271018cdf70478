"""The original Pearl's module paths import, and give the classes pearll.buffers exports."""

from __future__ import annotations

import importlib

import gymnasium as gym
import numpy as np
import pytest

import pearll.buffers

ORIGINAL_PATHS = {
    "pearll.buffers.base_buffer": "BaseBuffer",
    "pearll.buffers.replay_buffer": "ReplayBuffer",
    "pearll.buffers.rollout_buffer": "RolloutBuffer",
    "pearll.buffers.her_buffer": "HERBuffer",
}


@pytest.mark.parametrize("module_name", sorted(ORIGINAL_PATHS))
def test_original_module_path_gives_the_same_class(module_name):
    name = ORIGINAL_PATHS[module_name]
    module = importlib.import_module(module_name)
    assert getattr(module, name) is getattr(pearll.buffers, name)


def test_what_the_original_tests_import():
    # The imports of the original's tests/test_buffers.py and tests/test_her.py.
    from pearll.buffers import HERBuffer, ReplayBuffer, RolloutBuffer
    from pearll.buffers.base_buffer import BaseBuffer
    from pearll.buffers.her_buffer import HERBuffer as OriginalHER
    from pearll.buffers.replay_buffer import ReplayBuffer as OriginalReplay
    from pearll.buffers.rollout_buffer import RolloutBuffer as OriginalRollout
    from pearll.common.enumerations import GoalSelectionStrategy, TrajectoryType
    from pearll.common.type_aliases import Trajectories

    assert OriginalHER is HERBuffer and OriginalReplay is ReplayBuffer
    assert OriginalRollout is RolloutBuffer and issubclass(ReplayBuffer, BaseBuffer)
    assert GoalSelectionStrategy("future") and TrajectoryType("numpy")
    buffer = OriginalReplay(gym.make("CartPole-v1"), buffer_size=8)
    obs, _ = buffer_env_step(buffer)
    assert isinstance(buffer.last(1), Trajectories) and obs.shape == (4,)


def buffer_env_step(buffer):
    env = gym.make("CartPole-v1")
    obs, info = env.reset(seed=0)
    next_obs, reward, terminated, _, _ = env.step(0)
    buffer.add_trajectory(obs, 0, reward, next_obs, terminated)
    return np.asarray(obs), info
