"""Enumerations accepted wherever pearll takes a string option."""

from __future__ import annotations

from enum import Enum


class TrajectoryType(str, Enum):
    """The array type a buffer returns: numpy arrays, or torch tensors on the buffer's device."""

    NUMPY = "numpy"
    TORCH = "torch"


def parse_trajectory_type(dtype: str | TrajectoryType) -> TrajectoryType:
    """Turn ``"numpy"``/``"torch"`` (or the enum) into a TrajectoryType, or raise ValueError."""
    # The common cases without the enum lookup (called on every sample).
    if dtype == "numpy":
        return TrajectoryType.NUMPY
    if dtype == "torch":
        return TrajectoryType.TORCH
    try:
        return TrajectoryType(dtype)
    except ValueError:
        choices = ", ".join(repr(t.value) for t in TrajectoryType)
        raise ValueError(f"dtype: expected one of {choices}, got {dtype!r}") from None


class GoalSelectionStrategy(str, Enum):
    """Where HER takes a relabelled goal from, for the transition at step t of an episode.

    Steps count observations: the episode's first observation is step 0 and the transition at
    step t leads to the observation of step t + 1. FUTURE: a step drawn uniformly from
    t + 1 .. T, T the episode's last step (so it includes the next observation); FINAL: step T;
    EPISODE: a step drawn uniformly from 1 .. T (the observations the episode's actions reached).
    """

    FINAL = "final"
    FUTURE = "future"
    EPISODE = "episode"


def parse_goal_selection_strategy(strategy: str | GoalSelectionStrategy) -> GoalSelectionStrategy:
    """Turn ``"final"``/``"future"``/``"episode"`` (any case, or the enum) into the enum."""
    if isinstance(strategy, GoalSelectionStrategy):
        return strategy
    try:
        return GoalSelectionStrategy(str(strategy).lower())
    except ValueError:
        choices = ", ".join(repr(s.value) for s in GoalSelectionStrategy)
        raise ValueError(
            f"goal_selection_strategy: expected one of {choices}, got {strategy!r}"
        ) from None
