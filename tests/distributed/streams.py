"""Step streams and priorities shared by the distributed tests."""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium.vector import SyncVectorEnv

from tests.fixtures import TaggedEnv
from tests.reference import reference_window


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


class ShardWriter:
    """What tests.reference.Runner feeds, sent to one shard of a replay service."""

    def __init__(self, service: Any, shard: int) -> None:
        self.service, self.shard = service, shard

    def add_batch_trajectories(self, *args: Any, **kwargs: Any) -> None:
        self.service.add_batch_trajectories(self.shard, *args, **kwargs)


def tagged(first_tag: int, num_envs: int, mode: Any) -> SyncVectorEnv:
    """A vector env of TaggedEnvs tagged ``first_tag``, ``first_tag + 1``, ..."""
    fns = [(lambda t=first_tag + i: TaggedEnv(tag=t)) for i in range(num_envs)]
    return SyncVectorEnv(fns, autoreset_mode=mode)


def key(observation: Any) -> tuple[int, ...]:
    """A TaggedEnv observation as ``(tag, episode, step)``: it names the transition."""
    return tuple(int(x) for x in np.asarray(observation).reshape(-1))


def priority_of(k: tuple[int, ...]) -> float:
    tag, episode, step = k
    return 1.0 + (7 * tag + 3 * episode + step) % 11


def histories(references: dict[int, tuple[Any, int]]) -> dict[int, tuple[list, int]]:
    """``{tag: (history, start)}`` from ``{tag: (ReferenceBuffer, sub-env)}``: each sub-env's
    true transitions and the index of its oldest retained one."""
    out = {}
    for tag, (reference, env) in references.items():
        history = reference.transitions[env]
        out[tag] = (history, len(history) - len(reference.retained(env)))
    return out


def check_windows(batch: Any, by_tag: dict[int, tuple[list, int]], burn_in: int, length: int,
                  cross: bool) -> list[tuple[int, ...]]:  # fmt: skip
    """Assert every ``(B, T, ...)`` window of ``batch`` is the reference window at its anchor
    (tests.reference.reference_window); returns the anchors' keys."""
    anchors = []
    for b in range(len(batch.indices)):
        anchor = key(batch.observations[b, burn_in])
        history, start = by_tag[anchor[0]]
        i = next(j for j in range(start, len(history)) if key(history[j].obs) == anchor)
        steps, firsts = reference_window(history, start, i, burn_in, length, cross)
        np.testing.assert_array_equal(batch.is_first[b], firsts)
        real = np.array([s is not None for s in steps], dtype=np.float32)
        np.testing.assert_array_equal(batch.mask[b], real)
        np.testing.assert_array_equal(batch.learn_mask[b, burn_in:], real[burn_in:])
        assert not batch.learn_mask[b, :burn_in].any()
        for t, step in enumerate(steps):
            if step is None:
                assert not batch.observations[b, t].any() and not batch.rewards[b, t].any()
                continue
            assert key(batch.observations[b, t]) == key(step.obs)
            assert key(batch.next_observations[b, t]) == key(step.next_obs)
            assert batch.rewards[b, t, 0] == np.float32(step.reward)
            assert batch.dones[b, t, 0] == float(step.done)
            assert batch.truncateds[b, t, 0] == bool(step.truncated)
        anchors.append(anchor)
    return anchors
