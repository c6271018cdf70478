"""Reading spaces, sub-env count and autoreset mode from envs."""

from __future__ import annotations

import gymnasium as gym
import pytest
from gymnasium.vector import AutoresetMode

from pearll.buffers.core.env_info import EnvInfo
from tests.fixtures import make_env


def test_single_env():
    info = EnvInfo.of(gym.make("CartPole-v1"))
    assert (info.num_envs, info.is_vector) == (1, False)
    assert info.observation_space.shape == (4,)


@pytest.mark.parametrize("mode", list(AutoresetMode))
def test_vector_env_reads_its_mode_and_single_spaces(mode):
    info = EnvInfo.of(make_env(3, mode))
    assert (info.num_envs, info.is_vector, info.autoreset_mode) == (3, True, mode)
    assert info.observation_space.shape == (3,)


@pytest.mark.parametrize("name", ["same_step", "SameStep", AutoresetMode.SAME_STEP])
def test_mode_override_accepts_names(name):
    assert EnvInfo.of(make_env(2), name).autoreset_mode is AutoresetMode.SAME_STEP


def test_unknown_mode_lists_the_choices():
    with pytest.raises(ValueError, match="expected one of NEXT_STEP, SAME_STEP, DISABLED"):
        EnvInfo.of(make_env(2), "sometimes")


def test_a_vector_like_object_needs_only_its_single_spaces():
    from types import SimpleNamespace

    from gymnasium import spaces

    env = SimpleNamespace(
        num_envs=2,
        single_observation_space=spaces.Box(0, 1, (3,)),
        single_action_space=spaces.Discrete(2),
        metadata={},
    )
    info = EnvInfo.of(env)
    assert (info.num_envs, info.observation_space.shape) == (2, (3,))
