"""Turning gathered ``(E, B, ...)`` arrays into what the caller asked for.

The env axis is dropped for a single env and merged into the batch axis with
``flatten_env=True``; arrays become torch tensors on the buffer's device for
``dtype="torch"``. torch is imported only here, and only when asked for.
"""

from __future__ import annotations

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


def resolve_device(device: Any) -> Any:
    """``"auto"`` -> cuda if available else cpu, as a torch.device."""
    torch = import_torch()
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def shape_env_axis(tree: Any, is_vector: bool, flatten_env: bool) -> Any:
    """Arrays of shape ``(E, B, ...)`` as the caller sees them (see module docstring)."""
    if not is_vector:
        return tree_map(lambda a: a[0], tree)
    if flatten_env:
        return tree_map(lambda a: a.reshape((-1, *a.shape[2:])), tree)
    return tree


def convert(tree: Any, dtype: str | TrajectoryType, device: Any) -> Any:
    """The arrays of ``tree`` as numpy (unchanged) or as torch tensors on ``device``."""
    if parse_trajectory_type(dtype) is TrajectoryType.NUMPY:
        return tree
    torch = import_torch()
    target = resolve_device(device)
    return tree_map(lambda a: torch.as_tensor(np.ascontiguousarray(a), device=target), tree)
