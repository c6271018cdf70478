"""Step streams and priorities shared by the distributed tests."""

from __future__ import annotations

from typing import Any

import numpy as np

from tests.fixtures import TaggedEnv


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
