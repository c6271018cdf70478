"""Shared by the demo tests: stand-in trainers and a tiny goal env (so the tests run in seconds
without torch or the real trainers), and the check that a file is a drawn PNG."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from matplotlib.image import imread

from pearll.demo.runners import RunConfig


def random_dqn_trainer(env: gym.Env, buffer: Any, config: RunConfig, on_episode) -> int:
    """``train_dqn_agent``'s contract with a random policy: steps, stores, reports episodes."""
    env.action_space.seed(config.seed)
    observation, _ = env.reset(seed=config.seed)
    episode_return = 0.0
    for step in range(1, config.steps + 1):
        action = env.action_space.sample()
        next_observation, reward, terminated, truncated, info = env.step(action)
        buffer.add_trajectory(observation, action, reward, next_observation, terminated, truncated)
        episode_return += float(reward)
        observation = next_observation
        if terminated or truncated:
            on_episode(step, episode_return, info.get("is_success"))
            observation, _ = env.reset()
            episode_return = 0.0
    return config.steps


def scripted_ppo_trainer(config: RunConfig, on_episode) -> tuple[int, None]:
    """``train_ppo_agent``'s contract: episodes of return 10, 20, ... every 50 steps."""
    for i in range(config.steps // 50):
        on_episode((i + 1) * 50, 10.0 * (i + 1))
    return config.steps, None


class GoalEnv(gym.Env):
    """A goal Dict env: move a counter to a goal in {0..3}; Discrete(2) actions (-1, +1)."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self) -> None:
        box = spaces.Box(0, 3, (1,), np.float32)
        self.observation_space = spaces.Dict(
            {"observation": box, "achieved_goal": box, "desired_goal": box}
        )
        self.action_space = spaces.Discrete(2)
        self._state = self._goal = 0.0
        self._steps = 0

    def _obs(self) -> dict[str, np.ndarray]:
        state = np.array([self._state], np.float32)
        return {
            "observation": state,
            "achieved_goal": state.copy(),
            "desired_goal": np.array([self._goal], np.float32),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state, self._goal = (float(x) for x in self.np_random.integers(0, 4, 2))
        self._steps = 0
        return self._obs(), {}

    def step(self, action: int):
        self._state = float(np.clip(self._state + (1 if action else -1), 0, 3))
        self._steps += 1
        success = self._state == self._goal
        reward = 0.0 if success else -1.0
        return (
            self._obs(),
            reward,
            success,
            not success and self._steps >= 6,
            {"is_success": success},
        )

    def compute_reward(self, achieved_goal, desired_goal, info):
        return np.where(np.all(achieved_goal == desired_goal, axis=-1), 0.0, -1.0).astype(
            np.float32
        )


GOAL_ENV_ID = "pearll-test/Goal-v0"
if GOAL_ENV_ID not in gym.registry:
    gym.register(GOAL_ENV_ID, entry_point=GoalEnv)


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_drawn_png(path) -> None:
    """``path`` is a PNG that decodes to a non-blank image."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = imread(path)
    assert pixels.ndim == 3 and pixels.shape[0] > 100 and pixels.shape[1] > 100
    assert pixels.std() > 0
