"""Turning gathered ``(E, B, ...)`` arrays into what the caller asked for.

The env axis is dropped for a single env and merged into the batch axis with
``flatten_env=True``; arrays become torch tensors on the buffer's device for
``dtype="torch"``. torch is imported only here, and only when asked for.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

from pearll.buffers.tree import tree_map
from pearll.common.enumerations import TrajectoryType, parse_trajectory_type


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
    if not is_vector:
        return {name: _map(_first, value) for name, value in fields.items()}
    if flatten_env:
        return {name: _map(_merge_env_axis, value) for name, value in fields.items()}
    return fields


def convert(fields: dict[str, Any], dtype: str | TrajectoryType, device: Any) -> dict[str, Any]:
    """The arrays of ``fields`` as numpy (unchanged) or as torch tensors on ``device``."""
    if parse_trajectory_type(dtype) is TrajectoryType.NUMPY:
        return fields
    torch = import_torch()
    target = resolve_device(device)
    if target.type == "cpu":
        # from_numpy shares the fresh contiguous copy instead of copying again.
        return tree_map(lambda a: torch.from_numpy(np.ascontiguousarray(a)), fields)
    return tree_map(lambda a: torch.as_tensor(np.ascontiguousarray(a), device=target), fields)


def _map(fn: Any, value: Any) -> Any:
    # tree_map, minus its overhead for the plain arrays that most fields are (the hot path).
    return fn(value) if isinstance(value, np.ndarray) else tree_map(fn, value)


def _first(array: np.ndarray) -> np.ndarray:
    return array[0]


def _merge_env_axis(array: np.ndarray) -> np.ndarray:
    return array.reshape((-1, *array.shape[2:]))
