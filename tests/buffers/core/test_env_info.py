"""Reading spaces, sub-env count and autoreset mode from envs."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv

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


class NestedDictEnv(gym.Env):
    """Observations ``{"a": [episode, step], "n": {"z": [step]}}``; episodes of 1..3 steps."""

    observation_space = spaces.Dict(
        {
            "a": spaces.Box(0, 1e6, (2,), np.float32),
            "n": spaces.Dict({"z": spaces.Box(0, 1e6, (1,), np.float32)}),
        }
    )
    action_space = spaces.Discrete(2)

    def __init__(self, tag=0):
        self.episode, self.rng = -1, np.random.default_rng(tag)

    def _obs(self):
        return {
            "a": np.array([self.episode, self.t], np.float32),
            "n": {"z": np.array([self.t], np.float32)},
        }

    def reset(self, *, seed=None, options=None):
        self.episode, self.t, self.length = self.episode + 1, 0, int(self.rng.integers(1, 4))
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        return self._obs(), 0.0, self.t >= self.length, False, {}


def test_same_step_final_observations_of_nested_dicts():
    from pearll.buffers import ReplayBuffer

    env = SyncVectorEnv(
        [lambda i=i: NestedDictEnv(i) for i in range(2)], autoreset_mode=AutoresetMode.SAME_STEP
    )
    buffer = ReplayBuffer(env, 64, seed=0)
    obs, _ = env.reset(seed=0)
    for _ in range(20):
        next_obs, reward, terminated, truncated, info = env.step(np.zeros(2, np.int64))
        buffer.add_trajectory(
            obs, np.zeros(2, np.int64), reward, next_obs, terminated, truncated, info
        )
        obs = next_obs
    batch = buffer.all(flatten_env=True)
    episode, step = batch.observations["a"][:, 0], batch.observations["a"][:, 1]
    next_a, next_z = batch.next_observations["a"], batch.next_observations["n"]["z"][:, 0]
    # Every transition's next observation is the true one: same episode, the next step.
    np.testing.assert_array_equal(next_a[:, 0], episode)
    np.testing.assert_array_equal(next_a[:, 1], step + 1)
    np.testing.assert_array_equal(next_z, step + 1)
    assert batch.dones.sum() > 2  # episodes did end (and their final observations were used)
