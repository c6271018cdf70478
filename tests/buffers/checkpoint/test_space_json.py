"""Spaces survive the trip through JSON exactly, bounds included."""

from __future__ import annotations

import json
from typing import ClassVar

import numpy as np
import pytest
from gymnasium import spaces

from pearll.buffers import HERBuffer
from pearll.buffers.checkpoint.space_json import space_from_json, space_to_json
from pearll.envs import BitFlippingEnv
from tests.state import BUFFER_CLASSES, assert_same_state, state_leaves

SPACES = [
    spaces.Box(-np.inf, np.inf, shape=(3, 2), dtype=np.float32),
    spaces.Box(np.array([0.1, -1e-7]), np.array([np.inf, 3.3]), dtype=np.float64),
    spaces.Box(0, 255, shape=(4, 4, 3), dtype=np.uint8),
    spaces.Box(np.iinfo(np.int64).min, np.iinfo(np.int64).max, shape=(2,), dtype=np.int64),
    spaces.Discrete(5, start=-2),
    spaces.MultiDiscrete([[3, 4], [5, 6]]),
    spaces.MultiDiscrete([3, 4], start=[1, -2]),
    spaces.MultiBinary(4),
    spaces.MultiBinary([2, 3]),
    spaces.Dict({"a": spaces.Discrete(2), "b": spaces.Dict({"c": spaces.Box(-1, 1, (2,))})}),
]


@pytest.mark.parametrize("space", SPACES, ids=str)
def test_space_round_trips_through_strict_json(space):
    text = json.dumps(space_to_json(space), allow_nan=False)
    restored = space_from_json(json.loads(text))
    assert restored == space
    assert restored.dtype == space.dtype


def test_unsupported_space_and_bad_json_are_refused():
    with pytest.raises(TypeError, match="cannot save space"):
        space_to_json(spaces.Text(5))
    with pytest.raises(ValueError, match="not a saved space"):
        space_from_json({"type": "Graph"})


# --- every buffer class saves and loads every space type it accepts --------------------------

BOX_DTYPES = (np.float16, np.float32, np.float64, np.int8, np.int16, np.int32, np.int64,
              np.uint8, np.uint16, np.uint32, np.uint64, np.bool_)  # fmt: skip
OBSERVATION_SPACES = [
    *(spaces.Box(0, 1 if d is np.bool_ else 100, (2,), d) for d in BOX_DTYPES),
    spaces.Discrete(5, start=-2),
    spaces.MultiDiscrete([3, 4], start=[1, -2]),
    spaces.MultiBinary(4),
    spaces.MultiBinary([2, 3]),
    spaces.Dict(
        {
            "bits": spaces.MultiBinary(3),
            "n": spaces.Dict(
                {"d": spaces.Discrete(3, start=1), "b": spaces.Box(0, 9, (2,), np.int16)}
            ),
        }
    ),
]
ACTION_SPACES = [
    spaces.Box(-1, 1, (2,), np.float32),
    spaces.Discrete(4, start=3),
    spaces.MultiDiscrete([2, 5]),
    spaces.MultiBinary(3),
]


class SpaceEnv:
    """A vector-like env of 2 sub-envs whose observations and actions are draws of its spaces."""

    num_envs = 2
    metadata: ClassVar[dict] = {"autoreset_mode": "next_step"}

    def __init__(self, observation_space, action_space):
        self.single_observation_space = observation_space
        self.single_action_space = action_space
        observation_space.seed(0)
        action_space.seed(0)

    def steps(self, count):
        """``count`` vector steps ``(obs, action, reward, next_obs, done, truncated)``."""
        space, draw = self.single_observation_space, lambda s: [s.sample() for _ in range(2)]
        stack = lambda items: tree_stack(items)  # noqa: E731
        obs = stack(draw(space))
        for t in range(count):
            next_obs = stack(draw(space))
            ended = np.array([t % 3 == 2, t % 4 == 3])
            yield (
                obs,
                stack(draw(self.single_action_space)),
                np.full(2, t, np.float32),
                next_obs,
                ended,
                ~ended & (t % 5 == 4),
            )
            obs = next_obs


def tree_stack(items):
    if isinstance(items[0], dict):
        return {k: tree_stack([item[k] for item in items]) for k in items[0]}
    return np.stack([np.asarray(item) for item in items])


def saved_and_loaded(tmp_path, buffer, env, steps=14):
    for step in env.steps(steps):
        buffer.add_trajectory(*step)
    buffer.save(tmp_path / "ckpt")
    loaded = type(buffer).load(tmp_path / "ckpt")
    assert_same_state(buffer, loaded)
    for a, b in ((buffer.sample(5), loaded.sample(5)), (buffer.all(), loaded.all())):
        for x, y in zip(
            state_leaves(vars(a)).values(), state_leaves(vars(b)).values(), strict=True
        ):
            if x is not None:
                np.testing.assert_array_equal(x, y)
    return loaded


@pytest.mark.parametrize("buffer_class", BUFFER_CLASSES)
@pytest.mark.parametrize("observation_space", OBSERVATION_SPACES, ids=str)
def test_every_observation_space_saves_and_loads(tmp_path, buffer_class, observation_space):
    env = SpaceEnv(observation_space, spaces.Discrete(2))
    loaded = saved_and_loaded(tmp_path, buffer_class(env, 8, seed=0), env)
    assert loaded.env_info.observation_space == observation_space


@pytest.mark.parametrize("buffer_class", BUFFER_CLASSES)
@pytest.mark.parametrize("action_space", ACTION_SPACES, ids=str)
def test_every_action_space_saves_and_loads(tmp_path, buffer_class, action_space):
    env = SpaceEnv(spaces.Box(-1, 1, (2,), np.float32), action_space)
    loaded = saved_and_loaded(tmp_path, buffer_class(env, 8, seed=0), env)
    assert loaded.env_info.action_space == action_space


GOAL_SPACES = [
    spaces.MultiBinary(4),
    spaces.Box(0, 255, (3,), np.uint8),
    spaces.Box(-1, 1, (2,), np.float64),
]


@pytest.mark.parametrize("goal_space", GOAL_SPACES, ids=str)
def test_her_buffer_saves_and_loads_every_goal_space(tmp_path, goal_space):
    observation_space = spaces.Dict(
        {"observation": goal_space, "achieved_goal": goal_space, "desired_goal": goal_space}
    )
    env = SpaceEnv(observation_space, spaces.Discrete(2))
    reward = lambda achieved, desired, info: -np.any(achieved != desired, axis=-1).astype(float)  # noqa: E731
    buffer = HERBuffer(env, 8, compute_reward=reward, seed=0)
    for step in env.steps(14):
        buffer.add_trajectory(*step)
    buffer.save(tmp_path / "ckpt")
    loaded = HERBuffer.load(tmp_path / "ckpt", compute_reward=reward)
    assert_same_state(buffer, loaded)
    a, b = buffer.sample(6), loaded.sample(6)
    np.testing.assert_array_equal(a.rewards, b.rewards)
    np.testing.assert_array_equal(a.observations["desired_goal"], b.observations["desired_goal"])


def test_bit_flipping_env_checkpoints(tmp_path):
    env = BitFlippingEnv(n_bits=5)
    buffer = HERBuffer(env, 16, seed=0)
    obs, _ = env.reset(seed=0)
    for _ in range(12):
        action = env.action_space.sample()
        next_obs, reward, terminated, truncated, _ = env.step(action)
        buffer.add_trajectory(obs, action, reward, next_obs, terminated, truncated)
        obs = env.reset()[0] if terminated or truncated else next_obs
    buffer.save(tmp_path / "bits")  # TypeError (int64 not JSON serializable) before
    assert_same_state(buffer, HERBuffer.load(tmp_path / "bits", env))
