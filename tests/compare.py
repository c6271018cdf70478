"""Assertions comparing buffer output with reference transitions."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from tests.reference import Transition


def obs_equal(a: Any, b: Any) -> bool:
    if isinstance(a, dict):
        return set(a) == set(b) and all(obs_equal(a[k], b[k]) for k in a)
    return np.array_equal(np.asarray(a).reshape(-1), np.asarray(b).reshape(-1))


def row(trajectories: Any, i: int) -> Transition:
    """Transition ``i`` of a flat (no env axis) numpy Trajectories."""

    def pick(x: Any) -> Any:
        return {k: pick(v) for k, v in x.items()} if isinstance(x, dict) else x[i]

    return Transition(
        pick(trajectories.observations),
        trajectories.actions[i],
        float(trajectories.rewards[i, 0]),
        pick(trajectories.next_observations),
        bool(trajectories.dones[i, 0]),
        truncated=False,
    )


def same_transition(got: Transition, want: Transition) -> bool:
    return (
        obs_equal(got.obs, want.obs)
        and obs_equal(got.action, want.action)
        and np.isclose(got.reward, want.reward)
        and obs_equal(got.next_obs, want.next_obs)
        and got.done == bool(want.done)
    )


def assert_rows_match(trajectories: Any, expected: list[Transition]) -> None:
    n = len(trajectories.rewards)
    assert n == len(expected), f"{n} transitions returned, {len(expected)} expected"
    for i, want in enumerate(expected):
        got = row(trajectories, i)
        assert same_transition(got, want), f"transition {i}: got {got}, expected {want}"


def env_slice(trajectories: Any, env: int) -> Any:
    """The transitions of sub-env ``env`` from a Trajectories with an env axis."""

    def pick(x: Any) -> Any:
        if x is None:
            return None
        return {k: pick(v) for k, v in x.items()} if isinstance(x, dict) else x[env]

    # Every field, including those of subclasses (indices, weights) and optional ones.
    return dataclasses.replace(
        trajectories,
        **{f.name: pick(getattr(trajectories, f.name)) for f in dataclasses.fields(trajectories)},
    )


FIELDS = ("observations", "actions", "rewards", "next_observations", "dones")
