"""Arrays are allocated from every supported space with the right shapes and dtypes."""

from __future__ import annotations

from typing import ClassVar

import numpy as np
import pytest
from gymnasium import spaces

from pearll.buffers import ReplayBuffer, RolloutBuffer


class SpacesEnv:
    """Just the attributes a buffer reads."""

    metadata: ClassVar[dict] = {}

    def __init__(self, observation_space, action_space, num_envs=None):
        self.observation_space, self.action_space = observation_space, action_space
        if num_envs is not None:
            self.num_envs = num_envs


BOX = spaces.Box(-1, 1, shape=(2, 3), dtype=np.float32)


@pytest.mark.parametrize(
    ("action_space", "shape", "dtype"),
    [
        (spaces.Discrete(4), (1,), np.int64),
        (spaces.MultiDiscrete([3, 4]), (2,), np.int64),
        (spaces.MultiBinary(5), (5,), np.int8),
        (spaces.Box(-2, 2, shape=(3,), dtype=np.float64), (3,), np.float64),
    ],
)
def test_action_arrays_follow_the_space(action_space, shape, dtype):
    buffer = ReplayBuffer(SpacesEnv(BOX, action_space), 10)
    assert buffer.actions.shape == (10, *shape)
    assert buffer.actions.dtype == dtype
    assert buffer.observations.shape == (10, 2, 3)
    assert buffer.observations.dtype == np.float32
    assert buffer.rewards.shape == buffer.dones.shape == (10, 1)


def test_vector_env_adds_an_env_axis():
    buffer = RolloutBuffer(SpacesEnv(BOX, spaces.Discrete(2), num_envs=3), 10)
    assert buffer.observations.shape == buffer.next_observations.shape == (10, 3, 2, 3)
    assert buffer.actions.shape == buffer.rewards.shape == (10, 3, 1)


def test_dict_observations_are_one_array_per_key_nested_too():
    space = spaces.Dict(
        {"image": spaces.Box(0, 255, (4, 4), np.uint8),
         "state": spaces.Dict({"pos": BOX, "mode": spaces.Discrete(3)})}
    )  # fmt: skip
    buffer = ReplayBuffer(SpacesEnv(space, spaces.Discrete(2)), 10)
    assert buffer.observations["image"].shape == (10, 4, 4)
    assert buffer.observations["image"].dtype == np.uint8
    assert buffer.observations["state"]["pos"].shape == (10, 2, 3)
    assert buffer.observations["state"]["mode"].shape == (10, 1)
    obs = {"image": np.ones((4, 4), np.uint8), "state": {"pos": np.zeros((2, 3)), "mode": 2}}
    buffer.add_trajectory(obs, 1, 0.5, obs, True)
    sample = buffer.sample(3)
    assert sample.observations["state"]["mode"].tolist() == [[2]] * 3
    assert type(sample).__name__ == "DictTrajectories"


@pytest.mark.parametrize(
    ("space", "good", "bad"),
    [
        (spaces.MultiDiscrete([3, 4]), [2, 3], [3, 0]),
        (spaces.MultiBinary(2), [1, 0], [2, 0]),
        (spaces.Box(-2, 2, shape=(2,)), [2.0, -2.0], [np.nan, 0.0]),
        (spaces.Discrete(3, start=1), 3, 0),
    ],
)
def test_actions_outside_the_space_are_rejected(space, good, bad):
    buffer = ReplayBuffer(SpacesEnv(BOX, space), 10)
    obs = np.zeros((2, 3), np.float32)
    buffer.add_trajectory(obs, good, 0.0, obs, False)
    with pytest.raises(ValueError, match="outside the space"):
        buffer.add_trajectory(obs, bad, 0.0, obs, False)
    assert len(buffer) == 1


def test_unsupported_space_is_named():
    with pytest.raises(TypeError, match="unsupported space Text"):
        ReplayBuffer(SpacesEnv(spaces.Text(5), spaces.Discrete(2)), 10)


def test_nbytes_counts_every_allocated_array():
    buffer = ReplayBuffer(SpacesEnv(BOX, spaces.Discrete(2), num_envs=2), 10)
    packed_row = 6 * 4 + 8 + 4 + 4 + 1 + 7  # obs, action, reward, done, truncated, padding
    # 10 rows + a mirror of row 0 per sub-env, and a transition flag per row.
    assert buffer.nbytes == 11 * 2 * packed_row + 10 * 2
