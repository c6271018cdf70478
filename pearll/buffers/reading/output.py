"""Turning gathered ``(E, B, ...)`` arrays into what the caller asked for.

The env axis is dropped for a single env and merged into the batch axis with
``flatten_env=True``; arrays become torch tensors on the buffer's device for
``dtype="torch"``. torch is imported only here, and only when asked for.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from pearll.common.enumerations import TrajectoryType, parse_trajectory_type
from pearll.common.tree import tree_map
from pearll.common.type_aliases import DictTrajectories, PrioritizedTrajectories, Trajectories


def import_torch() -> Any:
    """The torch module, or an ImportError that says how to install it."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "dtype='torch' needs PyTorch, which is not installed: pip install torch"
        ) from error
    return torch


@functools.lru_cache(maxsize=32)
def resolve_device(device: Any) -> Any:
    """``"auto"`` -> cuda if available else cpu, as a torch.device (cached: called per sample)."""
    torch = import_torch()
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def shape_env_axis(fields: dict[str, Any], is_vector: bool, flatten_env: bool) -> dict[str, Any]:
    """Fields of ``(E, B, ...)`` arrays (or trees of them) as the caller sees them."""
    if is_vector and not flatten_env:
        return fields
    return _map(_merge_env_axis if is_vector else _first, fields)


def convert(fields: Any, dtype: str | TrajectoryType, device: Any) -> Any:
    """The arrays of ``fields`` (an array or dict tree) as numpy (unchanged) or as torch tensors
    on ``device``.

    The arrays are fresh (gathered for this call, never views of the storage), so on the cpu
    the tensors share their memory instead of copying it. Like the arrays, they may be strided
    views of one gathered block: call ``.contiguous()`` before ``.view()`` on one.
    """
    if parse_trajectory_type(dtype) is TrajectoryType.NUMPY:
        return fields
    torch = import_torch()
    target = resolve_device(device)
    if target.type == "cpu":
        return _map(torch.from_numpy, fields)
    return _map(lambda array: torch.as_tensor(np.ascontiguousarray(array), device=target), fields)


def _map(fn: Any, fields: Any) -> Any:
    """``tree_map(fn, fields)``, minus its dispatch for the plain arrays most fields are."""
    if not isinstance(fields, dict):
        return tree_map(fn, fields)
    return {
        name: fn(value) if type(value) is np.ndarray else tree_map(fn, value)
        for name, value in fields.items()
    }


def _first(array: np.ndarray) -> np.ndarray:
    return array[0]


def _merge_env_axis(array: np.ndarray) -> np.ndarray:
    return array.reshape((-1, *array.shape[2:]))


def record_of(fields: dict[str, Any]) -> Trajectories:
    """The record a read returns, chosen by its fields: PrioritizedTrajectories when they carry
    importance ``weights`` (a prioritized draw; ``last``/``all`` read in order, without), else
    DictTrajectories for Dict observations, else Trajectories."""
    if "weights" in fields:
        return PrioritizedTrajectories(**fields)
    record = DictTrajectories if isinstance(fields["observations"], dict) else Trajectories
    return record(**fields)
