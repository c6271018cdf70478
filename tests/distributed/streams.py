"""Step streams, stand-in checkpoints and fixtures shared by the distributed tests."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import numpy as np

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer
from tests.envs import TaggedEnv


def episodes(tag: int, min_steps: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """``(obs, actions, rewards, next_obs, terminated, truncated)`` of a TaggedEnv run of at
    least ``min_steps`` steps that stops at an episode end (so streams can be concatenated)."""
    env = TaggedEnv(tag=tag)
    obs, _ = env.reset(seed=seed)
    steps: list[tuple] = []
    while True:
        next_obs, reward, term, trunc, _ = env.step(0)
        steps.append((obs, 0, reward, next_obs, term, trunc))
        obs = next_obs
        if term or trunc:
            if len(steps) >= min_steps:
                break
            obs, _ = env.reset()
    return tuple(np.array(column) for column in zip(*steps, strict=True))


def key(observation: Any) -> tuple[int, ...]:
    """A TaggedEnv observation as ``(tag, episode, step)``: it names the transition."""
    return tuple(int(x) for x in np.asarray(observation).reshape(-1))


def priority_of(k: tuple[int, ...]) -> float:
    tag, episode, step = k
    return 1.0 + (7 * tag + 3 * episode + step) % 11


class _PickleCheckpoints:
    """A stand-in for pearll persistence (``save``/``load``) while it is not on this branch.

    Saves the packed storage bytes and every other attribute with pickle; enough for the
    service's checkpoint/restart path, none of the real format's guarantees.
    """

    _SKIP = ("_storage", "_packed", "_single_step")

    def __init__(self, env: Any, buffer_size: int, **kwargs: Any) -> None:
        super().__init__(env, buffer_size, **kwargs)
        self._args = (env, buffer_size, kwargs)

    def save(self, path: Any) -> Path:
        path = Path(path)
        path.mkdir(parents=True)
        state = {k: v for k, v in self.__dict__.items() if k not in self._SKIP}
        (path / "state.pkl").write_bytes(pickle.dumps((state, self._packed.packed)))
        return path

    @classmethod
    def load(cls, path: Any, env: Any = None) -> Any:
        state, packed = pickle.loads((Path(path) / "state.pkl").read_bytes())
        saved_env, size, kwargs = state["_args"]
        buffer = cls(saved_env if env is None else env, size, **kwargs)
        buffer.__dict__.update(state)
        buffer._packed.packed[...] = packed
        return buffer


class StandinReplay(_PickleCheckpoints, ReplayBuffer):
    pass


class StandinPER(_PickleCheckpoints, PrioritizedReplayBuffer):
    pass
