"""Priorities: what prioritized replay keeps beside the stored transitions, as one part.

The sum tree of every stored transition's ``(p + eps) ** alpha`` (one tree per sub-env), the
largest priority given so far (a new transition gets it, so it is sampled at least once soon),
and the number of samples drawn (which drives beta's annealing).
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from numba import njit

from pearll.buffers.sampling.sum_tree import BRANCHING, SumTree, update_leaves

FLOAT64_MAX = float(np.finfo(np.float64).max)


class Priorities:
    """The state of prioritized replay for ``num_envs`` sub-envs of ``capacity`` rows."""

    def __init__(self, num_envs: int, capacity: int) -> None:
        self.tree = SumTree(num_envs, capacity)
        self.max_priority = 1.0
        self.samples_drawn = 0

    @staticmethod
    def bytes_for(capacity: int, num_envs: int) -> int:
        return SumTree.required_bytes(num_envs, capacity)

    def limit(self) -> float:
        """The largest stored value ``(p + eps) ** alpha`` allowed: the largest float64 over
        the rows per sub-env, so that a sub-env's total stays finite."""
        return FLOAT64_MAX / self.tree.capacity

    def set(
        self,
        rows: np.ndarray,
        envs: np.ndarray,
        priorities: np.ndarray,
        keep: np.ndarray,
        alpha: float,
        eps: float,
    ) -> None:
        """Store ``(priorities + eps) ** alpha`` at the slots ``(rows, envs)`` where ``keep``
        (1-D arrays of one length: int64, int64, float64 finite >= 0, bool); raises ValueError,
        changing nothing, if a value is above :meth:`limit`. The specification of
        :meth:`try_update_slots`, and the path of sequence priorities."""
        limit = self.limit()
        shifted = priorities + eps
        if len(shifted) and shifted.max() <= _safe_priority(alpha, self.tree.capacity):
            scaled = shifted**alpha  # far from overflow: no errstate, no second check
            too_large = None
        else:
            with np.errstate(over="ignore"):
                scaled = shifted**alpha
            too_large = ~(scaled <= limit)
        if too_large is not None and too_large.any():
            raise ValueError(
                f"priorities: {priorities[too_large][:5]} are too large: (priority + eps) ** "
                f"alpha (alpha={alpha}) must stay at most {limit:.3g} (the largest float64 "
                f"over buffer_size={self.tree.capacity}), so that the sum of priorities is finite"
            )
        values = priorities[keep] + eps
        if len(values):
            self.max_priority = max(self.max_priority, float(values.max()))
        self.tree.update(envs[keep], rows[keep], scaled[keep])

    def try_update_slots(
        self, slots: np.ndarray, priorities: np.ndarray, valid: np.ndarray, alpha: float, eps: float
    ) -> bool:
        """:meth:`set` for the slots ``row * E + env`` (``slots`` 1-D int64, ``priorities``
        1-D float64) of the stored transitions among them (``valid`` ``(capacity, E)``), the
        tree written in one compiled call; False, changing nothing, if a slot or a priority is
        out of range or near the limit (the caller's checks then say which, or store it)."""
        if len(priorities):
            # Out of range (nan too) or near overflow: the caller's exact checks decide.
            low, high = priorities.min(), priorities.max()
            if not (low >= 0 and high + eps <= _safe_priority(alpha, self.tree.capacity)):
                return False
        # The power in numpy, as in set(): a compiled pow may differ in the last bit.
        scaled = (priorities + eps) ** alpha
        tree = self.tree
        largest = _checked_update(
            tree.sums, tree.mins, tree.offsets, valid, slots, priorities, scaled, float(eps),
            BRANCHING,
        )  # fmt: skip
        if largest < 0:
            return False
        self.max_priority = max(self.max_priority, largest)
        return True

    # --- the part protocol (core/part.py) ---------------------------------------------------

    @property
    def nbytes(self) -> int:
        return self.tree.nbytes

    def reset(self) -> None:
        self.tree.clear()
        self.max_priority = 1.0
        self.samples_drawn = 0

    def state(self) -> dict[str, Any]:
        """``priorities``: the tree's node sums and minima ``(E, nodes)`` float64;
        ``max_priority``; ``samples_drawn``."""
        tree = {"sums": self.tree.sums, "mins": self.tree.mins}
        progress = {"max_priority": self.max_priority, "samples_drawn": self.samples_drawn}
        return {"priorities": tree, **progress}

    def set_state(self, state: dict[str, Any]) -> None:
        self.tree.sums[...] = state["priorities"]["sums"]
        self.tree.mins[...] = state["priorities"]["mins"]
        self.max_priority = float(state["max_priority"])
        self.samples_drawn = int(state["samples_drawn"])


@functools.lru_cache(maxsize=64)
def _safe_priority(alpha: float, capacity: int) -> float:
    """A priority + eps whose ``** alpha`` is surely at most the limit (with a margin for
    rounding), so the common case skips the exact overflow check."""
    if alpha <= 0:
        return np.inf
    limit = math.log(FLOAT64_MAX / capacity)
    return 0.5 * math.exp(min(limit / alpha, 709.0))  # (709: exp's range)


@njit(cache=True, nogil=True)
def _checked_update(
    sums, mins, offsets, valid, slots, priorities, scaled, eps, k
):  # pragma: no cover - compiled
    """Priorities.set for slots, their range checked first: -1.0 if a slot is out of range
    (nothing written), else the largest ``priority + eps`` written (0.0 if none)."""
    capacity, num_envs = valid.shape
    n = len(slots)
    rows = np.empty(n, dtype=np.int64)
    envs = np.empty(n, dtype=np.int64)
    values = np.empty(n, dtype=np.float64)
    kept, largest = 0, 0.0
    for j in range(n):
        slot = slots[j]
        if slot < 0 or slot >= capacity * num_envs:
            return -1.0
        row, env = slot // num_envs, slot % num_envs
        if valid[row, env]:
            rows[kept], envs[kept], values[kept] = row, env, scaled[j]
            largest = max(largest, priorities[j] + eps)
            kept += 1
    update_leaves(sums, mins, offsets, envs[:kept], rows[:kept], values[:kept], k)
    return largest
