"""Reading spaces, sub-env count and autoreset mode from envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from pearll.buffers import ReplayBuffer
from pearll.buffers.core.env_info import EnvInfo
from tests.fixtures import MODES, make_env
from tests.state import assert_same_state


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


# --- issue 13, item 15: minor inputs that used to fail with numpy's or Python's own errors ---


def _batch(num_envs, steps):
    lead = (steps, num_envs)
    obs = np.zeros((*lead, 3), np.float32)
    return obs, np.zeros(lead, np.int64), np.zeros(lead), obs, np.zeros(lead, bool)


@pytest.mark.parametrize("mode", MODES)
def test_an_empty_batch_is_a_no_op_in_every_mode(mode):
    """T = 0 on a NEXT_STEP vector env raised IndexError; the other modes were a no-op."""
    buffer, twin = (ReplayBuffer(make_env(2, mode), 8, seed=0) for _ in range(2))
    buffer.add_batch_trajectories(*_batch(2, 0))
    assert_same_state(buffer, twin)


@pytest.mark.parametrize("env", [None, 5, "CartPole-v1"])
def test_something_that_is_not_an_env_is_a_type_error_naming_it(env):
    with pytest.raises(TypeError, match=f"env: expected a gymnasium Env.*got {type(env).__name__}"):
        ReplayBuffer(env, 8)


@pytest.mark.parametrize("num_envs", [0, -1, 1.5, True])
def test_a_vector_env_without_sub_envs_is_refused(num_envs):
    """num_envs=0 silently became 1."""
    env = make_env(2)
    env.num_envs = num_envs
    with pytest.raises(ValueError, match=r"env\.num_envs: expected an int >= 1"):
        EnvInfo.of(env)


@pytest.mark.parametrize(
    ("info", "error", "match"),
    [
        ({"_final_obs": np.array([True, False]), "final_obs": np.zeros((2, 5))}, ValueError,
         r"info\['final_obs'\]\[0\]: expected an observation of shape \(3,\)"),
        ({"_final_obs": np.array([True]), "final_obs": [np.zeros(3)]}, ValueError,
         r"info\['_final_obs'\]: expected a bool array of shape \(2,\)"),
        ({"_final_obs": np.array([True, False]), "final_obs": 3}, ValueError,
         r"info\['final_obs'\]: expected one final observation per sub-env"),
        ({"_final_obs": np.array([True, False])}, ValueError,
         r"info\['final_obs'\]: expected one final observation per sub-env"),
        ({"_final_obs": np.array([True, False]), "final_obs": [None, None]}, ValueError,
         r"info\['final_obs'\]\[0\]: expected an observation"),
        ("not a dict", TypeError, "info: expected the vector env's info dict, got str"),
    ],
)  # fmt: skip
def test_a_malformed_same_step_info_names_what_was_expected(info, error, match):
    """These gave numpy's broadcast/reshape messages, KeyError or AttributeError."""
    buffer, twin = (ReplayBuffer(make_env(2, MODES[1]), 8, seed=0) for _ in range(2))
    obs = np.zeros((2, 3), np.float32)
    ended, flags = np.array([True, False]), np.zeros(2, bool)
    with pytest.raises(error, match=match):
        buffer.add_trajectory(obs, np.zeros(2, np.int64), np.zeros(2), obs, ended, flags, info)
    assert_same_state(buffer, twin)
