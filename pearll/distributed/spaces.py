"""What a shard's buffer is built from (picklable, sent to the shard actors) and how many
steps an add carries (counted before the buffer validates it)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class EnvSpaces:
    """The spaces a buffer is built from, without an env (picklable, sent to the shard actors).

    ``num_envs`` None is a single env; an int is a vector env of that many sub-envs, whose
    ``autoreset_mode`` (a gymnasium ``AutoresetMode`` or its name) matters for adds.
    """

    observation_space: Any
    action_space: Any
    num_envs: int | None = None
    autoreset_mode: Any = None

    @property
    def metadata(self) -> dict[str, Any]:
        return {} if self.autoreset_mode is None else {"autoreset_mode": self.autoreset_mode}

    @classmethod
    def of(cls, env: Any) -> EnvSpaces:
        """The spaces of a gymnasium Env or VectorEnv."""
        num_envs = getattr(env, "num_envs", None)
        if num_envs is None:
            return cls(env.observation_space, env.action_space)
        mode = (getattr(env, "metadata", None) or {}).get("autoreset_mode")
        return cls(env.single_observation_space, env.single_action_space, num_envs, mode)


def resolve_env(env: Any) -> Any:
    """``env`` itself if it has spaces (EnvSpaces, an Env), else the result of calling it."""
    if hasattr(env, "observation_space") or not callable(env):
        return env
    return env()


def steps_in(rewards: Any, vector: bool, batch: bool) -> int:
    """Steps an add carries: T (batch) times E (vector env), counted before validation."""
    shape = np.shape(rewards)
    steps = shape[0] if batch and shape else 1
    if vector:
        steps *= shape[1 if batch else 0] if len(shape) > int(batch) else 1
    return int(steps)
