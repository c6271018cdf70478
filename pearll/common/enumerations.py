"""Enumerations accepted wherever pearll takes a string option."""

from __future__ import annotations

from enum import Enum


class TrajectoryType(str, Enum):
    """The array type a buffer returns: numpy arrays, or torch tensors on the buffer's device."""

    NUMPY = "numpy"
    TORCH = "torch"


def parse_trajectory_type(dtype: str | TrajectoryType) -> TrajectoryType:
    """Turn ``"numpy"``/``"torch"`` (or the enum) into a TrajectoryType, or raise ValueError."""
    if dtype == "numpy":  # the common case, without the enum lookup (hot path)
        return TrajectoryType.NUMPY
    try:
        return TrajectoryType(dtype)
    except ValueError:
        choices = ", ".join(repr(t.value) for t in TrajectoryType)
        raise ValueError(f"dtype: expected one of {choices}, got {dtype!r}") from None
