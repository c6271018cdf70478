"""The bit-flipping task of the HER paper (Andrychowicz et al. 2017, section 3.1)."""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces


class BitFlippingEnv(gym.Env):
    """Flip bits of an ``n_bits`` state until it equals a goal: a sparse-reward goal env.

    Observations are a Dict in the Gymnasium-Robotics style, each key a ``MultiBinary(n_bits)``
    int8 vector: ``"observation"`` and ``"achieved_goal"`` are the state, ``"desired_goal"`` the
    goal. Reset draws the state and the goal uniformly at random, the goal different from the
    state. Action ``i`` (``Discrete(n_bits)``) flips bit ``i``. Reward is -1 per step until the
    state equals the goal, 0 on the step that reaches it, which terminates the episode; after
    ``n_bits`` steps the episode is truncated. ``info["is_success"]`` says whether the step
    reached the goal.
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, n_bits: int = 10) -> None:
        if isinstance(n_bits, bool) or not isinstance(n_bits, int | np.integer) or n_bits < 1:
            raise ValueError(f"n_bits: expected a positive int, got {n_bits!r}")
        self.n_bits = int(n_bits)
        bits = spaces.MultiBinary(self.n_bits)
        self.observation_space = spaces.Dict(
            {"observation": bits, "achieved_goal": bits, "desired_goal": bits}
        )
        self.action_space = spaces.Discrete(self.n_bits)
        self._state = np.zeros(self.n_bits, dtype=np.int8)
        self._goal = np.ones(self.n_bits, dtype=np.int8)
        self._steps = 0

    def _obs(self) -> dict[str, np.ndarray]:
        return {
            "observation": self._state.copy(),
            "achieved_goal": self._state.copy(),
            "desired_goal": self._goal.copy(),
        }

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._state = self.np_random.integers(0, 2, self.n_bits, dtype=np.int8)
        # Flipping a random non-empty set of bits keeps the goal uniform among the other states.
        flips = np.zeros(self.n_bits, dtype=np.int8)
        while not flips.any():
            flips = self.np_random.integers(0, 2, self.n_bits, dtype=np.int8)
        self._goal = self._state ^ flips
        self._steps = 0
        return self._obs(), {}

    def step(self, action: int):
        if not self.action_space.contains(action):
            raise ValueError(f"action: expected an int in [0, {self.n_bits}), got {action!r}")
        self._state[int(action)] ^= 1
        self._steps += 1
        reward = float(self.compute_reward(self._state, self._goal, {}))
        success = reward == 0.0
        truncated = not success and self._steps >= self.n_bits
        return self._obs(), reward, success, truncated, {"is_success": success}

    def compute_reward(
        self, achieved_goal: np.ndarray, desired_goal: np.ndarray, info: Any
    ) -> np.ndarray:
        """-1 where the goals differ, else 0, over the last axis: ``(..., n_bits)`` -> ``(...)``.

        Vectorised: any leading batch shape works; ``info`` is ignored. Returns float32.
        """
        differ = np.any(np.asarray(achieved_goal) != np.asarray(desired_goal), axis=-1)
        return np.where(differ, np.float32(-1), np.float32(0))
