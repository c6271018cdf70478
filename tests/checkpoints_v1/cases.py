"""Checkpoints written by the code as of 3ee5330 (format v1), kept to prove later code loads them.

``python -m tests.checkpoints_v1.cases`` wrote ``data/`` once, with that code: each case's
buffer after a seeded stream of adds, saved, and the samples it then drew (``expected.npz``).
The test loads each checkpoint with today's code and draws the same samples. Never regenerate
the data with newer code: that would prove nothing.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path
from typing import Any

import numpy as np

from pearll.buffers import HERBuffer, PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer
from tests.buffers.test_her import goal_env
from tests.fixtures import MODES, make_env, stacked_env

DATA = Path(__file__).parent / "data"
DRAWS = 3  # samples drawn after loading, each compared field by field
BATCH = 8


def _fill(buffer: Any, env: Any, steps: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        action = env.action_space.sample() if hasattr(env, "num_envs") else int(rng.integers(2))
        next_obs, reward, terminated, truncated, info = env.step(action)
        extras = {}
        if buffer.extras:
            shape = np.shape(reward)
            extras = {"log_prob": rng.normal(size=shape).astype(np.float32)}
        buffer.add_trajectory(obs, action, reward, next_obs, terminated, truncated, info, **extras)
        obs = next_obs


def build() -> dict[str, tuple[type, Any, Any]]:
    """name -> (buffer class, the buffer filled, the env to load it with)."""
    cases = {}
    env = make_env(None)
    b = ReplayBuffer(env, 16, seed=1)
    _fill(b, env, 40, 1)
    cases["replay_single"] = (ReplayBuffer, b, None)
    env = make_env(3, MODES[0])
    b = ReplayBuffer(env, 12, seed=2, n_step=3, gamma=0.9)
    _fill(b, env, 30, 2)
    cases["replay_nstep_vector_next_step"] = (ReplayBuffer, b, None)
    env = make_env(2, MODES[1], dict_obs=True)
    b = ReplayBuffer(env, 10, seed=3, extra_fields={"log_prob": ((), np.float32)})
    _fill(b, env, 25, 3)
    cases["replay_dict_same_step_extras"] = (ReplayBuffer, b, None)
    env = make_env(2, MODES[0])
    b = PrioritizedReplayBuffer(env, 16, seed=4, alpha=0.6, beta=0.4, n_step=2, gamma=0.9)
    _fill(b, env, 40, 4)
    batch = b.sample(4)
    b.update_priorities(batch.indices, np.arange(1.0, 1.0 + batch.indices.size).reshape(
        batch.indices.shape))  # fmt: skip
    cases["prioritized_vector"] = (PrioritizedReplayBuffer, b, None)
    env = stacked_env(2, MODES[1])
    b = ReplayBuffer(env, 12, seed=5)
    _fill(b, env, 40, 5)
    cases["frames_vector_same_step"] = (ReplayBuffer, b, None)
    env = goal_env(2, MODES[0])
    b = HERBuffer(env, 20, seed=6, n_sampled_goal=4, goal_selection_strategy="future")
    _fill(b, env, 40, 6)
    cases["her_vector"] = (HERBuffer, b, env)
    env = make_env(2, MODES[0])
    b = RolloutBuffer(env, 8, seed=7)
    _fill(b, env, 6, 7)
    cases["rollout_vector"] = (RolloutBuffer, b, None)
    return cases


def draw(buffer: Any) -> dict[str, np.ndarray]:
    """The samples compared: DRAWS seeded samples of BATCH, flattened to named arrays."""
    out = {}
    for i in range(DRAWS):
        batch = buffer.sample(min(BATCH, int(buffer.counts.min())))
        for field in dataclasses.fields(batch):
            _flatten(out, f"{i}.{field.name}", getattr(batch, field.name))
    return out


def _flatten(out: dict[str, np.ndarray], key: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, dict):
        for sub, v in value.items():
            _flatten(out, f"{key}.{sub}", v)
        return
    out[key] = np.asarray(value)


def main() -> None:
    if DATA.exists():
        shutil.rmtree(DATA)
    DATA.mkdir(parents=True)
    for name, (_, buffer, _) in build().items():
        buffer.save(DATA / name, progress=False)
        np.savez(DATA / f"{name}.expected.npz", **draw(buffer))


if __name__ == "__main__":
    main()
