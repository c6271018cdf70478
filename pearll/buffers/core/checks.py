"""Argument checks shared by the buffers' public methods."""

from __future__ import annotations

from typing import Any

import numpy as np


def check_batch_size(batch_size: Any) -> None:
    """Raise TypeError unless ``batch_size`` is an int (not a bool), ValueError unless > 0."""
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"batch_size: expected a positive int, got {type(batch_size).__name__}")
    if batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
