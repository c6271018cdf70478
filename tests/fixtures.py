"""Test envs, built in one place for every test module.

``TaggedEnv`` is the workhorse: each observation encodes (env tag, episode number, step number),
so a stored transition can be checked against the truth by value alone. Its episodes end at a
random step, by termination or by truncation (time limit), from a seeded schedule.
``FrameEnv`` does the same with small uint8 frames, and ``stacked_env`` wraps it in gymnasium's
``FrameStackObservation`` (K frames), as Atari envs are.
"""

from __future__ import annotations

from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, SyncVectorEnv
from gymnasium.wrappers import FrameStackObservation

MODES = (AutoresetMode.NEXT_STEP, AutoresetMode.SAME_STEP, AutoresetMode.DISABLED)
K = 4  # frames per stack of stacked_env


class TaggedEnv(gym.Env):
    """Observation ``[tag, episode, step]`` (float32); Discrete(3) actions; reward = step.

    Episode lengths are drawn from ``1..max_len``; an episode ends by termination with
    probability ``p_terminate`` else by truncation. With ``dict_obs`` the observation is
    ``{"tag": [tag, episode, step], "parity": step % 2}`` (a Box and a Discrete leaf).
    """

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, tag: int = 0, max_len: int = 6, p_terminate: float = 0.5, dict_obs=False):
        self.tag, self.max_len, self.p_terminate = tag, max_len, p_terminate
        self.dict_obs = dict_obs
        box = spaces.Box(-1e9, 1e9, shape=(3,), dtype=np.float32)
        self.observation_space = (
            spaces.Dict({"tag": box, "parity": spaces.Discrete(2)}) if dict_obs else box
        )
        self.action_space = spaces.Discrete(3)
        self.episode = -1
        self.schedule = np.random.default_rng(tag)

    def _obs(self) -> Any:
        vector = np.array([self.tag, self.episode, self.t], dtype=np.float32)
        return {"tag": vector, "parity": self.t % 2} if self.dict_obs else vector

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.schedule = np.random.default_rng(seed * 1000 + self.tag)
        self.episode += 1
        self.t = 0
        self.length = int(self.schedule.integers(1, self.max_len + 1))
        self.terminates = bool(self.schedule.random() < self.p_terminate)
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        ended = self.t >= self.length
        return (
            self._obs(),
            float(self.t),
            ended and self.terminates,
            ended and not self.terminates,
            {},
        )


def tagged_vector_env(num_envs: int, mode: AutoresetMode, dict_obs: bool = False, **kwargs):
    """A SyncVectorEnv of TaggedEnvs with tags 0..num_envs-1 in autoreset ``mode``."""
    fns = [(lambda i=i: TaggedEnv(tag=i, dict_obs=dict_obs, **kwargs)) for i in range(num_envs)]
    return SyncVectorEnv(fns, autoreset_mode=mode)


def make_env(num_envs: int | None, mode: AutoresetMode = AutoresetMode.NEXT_STEP, **kwargs):
    """A single TaggedEnv (``num_envs=None``) or a vector env of them."""
    if num_envs is None:
        return TaggedEnv(**kwargs)
    return tagged_vector_env(num_envs, mode, **kwargs)


class FrameEnv(gym.Env):
    """2x3 uint8 frames whose pixels encode (tag, episode, step); random episode ends."""

    metadata: ClassVar[dict] = {"render_modes": []}

    def __init__(self, tag: int = 0, max_len: int = 7, shape: tuple[int, int] = (2, 3)):
        # (2, 3): frames of 6 bytes, copied byte by byte; (2, 4) and wider: in 8-byte words.
        self.shape = shape
        self.observation_space = spaces.Box(0, 255, shape, np.uint8)
        self.action_space = spaces.Discrete(2)
        self.tag, self.max_len, self.episode = tag, max_len, 0
        self.schedule = np.random.default_rng(tag)

    def _frame(self) -> np.ndarray:
        frame = np.zeros(self.shape, np.uint8)
        frame[0, :3] = (self.tag + 1, self.episode % 250 + 1, self.t + 1)
        frame[1] = self.schedule.integers(0, 255, self.shape[1])
        return frame

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        self.length = int(self.schedule.integers(1, self.max_len + 1))
        return self._frame(), {}

    def step(self, action):
        self.t += 1
        ended = self.t >= self.length
        terminated = ended and self.t % 2 == 0
        return self._frame(), float(self.t), terminated, ended and not terminated, {}


def stacked_env(num_envs, mode=MODES[0], padding="reset", **kwargs):
    def make(tag=0):
        return FrameStackObservation(FrameEnv(tag, **kwargs), K, padding_type=padding)

    if num_envs is None:
        return make()
    fns = [lambda i=i: make(i) for i in range(num_envs)]
    return SyncVectorEnv(fns, autoreset_mode=mode)


def sb3_vec_env(num_envs: int, **kwargs):
    """An SB3 DummyVecEnv of TaggedEnvs (tags 0..num_envs-1): SB3 sets ``terminal_observation``
    and ``TimeLimit.truncated`` in infos, as the buffers under SB3 receive them."""
    from stable_baselines3.common.vec_env import DummyVecEnv

    return DummyVecEnv([lambda i=i: TaggedEnv(tag=i, **kwargs) for i in range(num_envs)])


def sb3_steps(venv, num_steps: int, seed: int = 0):
    """``num_steps`` random steps of ``venv`` as SB3's ``_store_transition`` passes them to
    ``replay_buffer.add``: ``(obs, next_obs, action, reward, done, infos)`` with the true final
    observation in ``next_obs`` where an episode ended."""
    import copy

    rng = np.random.default_rng(seed)
    obs = venv.reset()
    for _ in range(num_steps):
        action = np.array([venv.action_space.sample() for _ in range(venv.num_envs)])
        action = (
            rng.integers(0, venv.action_space.n, venv.num_envs)
            if hasattr(venv.action_space, "n")
            else action
        )
        new_obs, reward, done, infos = venv.step(action)
        next_obs = copy.deepcopy(new_obs)
        for i, ended in enumerate(done):
            if ended and infos[i].get("terminal_observation") is not None:
                if isinstance(next_obs, dict):
                    for key in next_obs:
                        next_obs[key][i] = infos[i]["terminal_observation"][key]
                else:
                    next_obs[i] = infos[i]["terminal_observation"]
        yield obs, next_obs, action, reward, done, infos
        obs = new_obs


class GoalTaggedEnv(gym.Env):
    """A goal env whose achieved goal is ``[episode, step]``: a relabelled goal says which step
    of which episode it came from. The desired goal is ``[episode, -1]`` (never achieved);
    ``compute_reward`` is 0 where the goals match, else -1. Episodes last 2..``max_len`` steps
    and end by termination or truncation, from a seeded schedule."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, max_len: int = 6):
        box = spaces.Box(-1e6, 1e6, (2,), np.float32)
        self.observation_space = spaces.Dict(
            {"observation": box, "achieved_goal": box, "desired_goal": box}
        )
        self.action_space = spaces.Discrete(2)
        self.max_len, self.episode = max_len, -1
        self.schedule = np.random.default_rng(0)

    def _obs(self):
        where = np.array([self.episode, self.t], np.float32)
        goal = np.array([self.episode, -1], np.float32)
        return {"observation": where, "achieved_goal": where.copy(), "desired_goal": goal}

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        self.length = int(self.schedule.integers(2, self.max_len + 1))
        self.terminates = bool(self.schedule.random() < 0.5)
        return self._obs(), {}

    def step(self, action):
        self.t += 1
        ended = self.t >= self.length
        return self._obs(), -1.0, ended and self.terminates, ended and not self.terminates, {}

    def compute_reward(self, achieved_goal, desired_goal, info):
        return (
            -(np.asarray(achieved_goal) != np.asarray(desired_goal)).any(axis=-1).astype(np.float32)
        )


def sb3_goal_vec_env(num_envs: int = 1, **kwargs):
    from stable_baselines3.common.vec_env import DummyVecEnv

    return DummyVecEnv([lambda: GoalTaggedEnv(**kwargs) for _ in range(num_envs)])


class ImageEnv(gym.Env):
    """uint8 images of ``shape`` whose first pixels encode (episode, step) and the rest are
    seeded noise; Discrete(2) actions; random episode ends, half of them truncations. For
    SB3's ``VecFrameStack`` (channels last by default, ``channels_first`` for (C, H, W))."""

    metadata: ClassVar[dict[str, Any]] = {"render_modes": []}

    def __init__(self, shape=(6, 5, 1), max_len: int = 7, channels_first: bool = False):
        self.shape = (shape[2], shape[0], shape[1]) if channels_first else tuple(shape)
        self.observation_space = spaces.Box(0, 255, self.shape, np.uint8)
        self.action_space = spaces.Discrete(2)
        self.max_len, self.episode = max_len, -1
        self.schedule = np.random.default_rng(1)

    def _image(self):
        image = self.schedule.integers(0, 256, self.shape, dtype=np.uint8)
        flat = image.reshape(-1)
        flat[:2] = (self.episode % 250 + 1, self.t + 1)
        return image

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.episode, self.t = self.episode + 1, 0
        self.length = int(self.schedule.integers(1, self.max_len + 1))
        return self._image(), {}

    def step(self, action):
        self.t += 1
        ended = self.t >= self.length
        terminated = ended and self.t % 2 == 0
        return self._image(), 1.0, terminated, ended and not terminated, {}
