"""The prefetch hint compiles for 1-d arrays and never changes what a loop computes."""

from __future__ import annotations

import numpy as np
import pytest
from numba import njit
from numba.core.errors import TypingError

from pearll.buffers.sampling.prefetch import prefetch


@njit
def _sum_with_hints(values, ahead):
    total = 0
    for i in range(len(values)):
        if i + ahead < len(values):
            prefetch(values, i + ahead)
        total += values[i]
    return total


@pytest.mark.parametrize("dtype", [np.uint64, np.float32, np.uint8])
def test_hints_leave_results_unchanged(dtype):
    values = np.arange(1000).astype(dtype)
    assert _sum_with_hints(values, 16) == values.sum(dtype=np.float64)


def test_only_1d_arrays_are_accepted():
    @njit
    def hint(array):
        prefetch(array, 0)

    with pytest.raises(TypingError):
        hint(np.zeros((2, 2)))
