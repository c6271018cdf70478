"""CartPole with the velocities hidden: a POMDP for recurrent agents.

The observation is cart position and pole angle only, so a policy must infer the velocities
from the recent past: a feed-forward DQN cannot balance the pole for long, a recurrent one can.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np


class VelocitiesHidden(gym.ObservationWrapper):
    """CartPole's observation without the cart velocity and pole angular velocity:
    ``(x, theta)``, float32."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        low, high = env.observation_space.low, env.observation_space.high
        self.observation_space = gym.spaces.Box(low[[0, 2]], high[[0, 2]], dtype=np.float32)

    def observation(self, observation: np.ndarray) -> np.ndarray:
        return np.asarray(observation, dtype=np.float32)[[0, 2]]


def cartpole_no_velocity(**kwargs: Any) -> gym.Env:
    """``CartPole-v1`` (500-step time limit) wrapped in :class:`VelocitiesHidden`."""
    return VelocitiesHidden(gym.make("CartPole-v1", **kwargs))
