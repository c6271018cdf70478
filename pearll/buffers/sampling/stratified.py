"""Stratified proportional draws over a whole pool of sum trees (every sub-env as one tree).

The sub-envs' trees are laid end to end: tree e covers ``[start_e, start_e + total_e)`` of
``[0, M)``, ``M`` the sum of every tree's total. ``k`` draws cut ``[0, M)`` into ``k`` equal
strata and take one target in each, ``(j + u_j) / k * M`` with ``u_j`` uniform in ``[0, 1)``;
a target is then searched in the tree whose stretch holds it. Each draw is leaf i of tree e
with probability ``p_i / M`` (stratification lowers the variance of a batch, not the marginal
probability of a draw). This is ``PrioritizedReplayBuffer.sample(flatten_env=True)``'s draw
and the one ``PrioritizedReplayBuffer.draw_slots`` hands the replay service.
"""

from __future__ import annotations

import numpy as np

from pearll.buffers.sampling.sum_tree import SumTree


def stratified_pool_draw(tree: SumTree, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(trees, leaves)``, each ``(k,)`` int64: the leaves the ``k`` strata of the whole pool
    point at, for ``uniforms`` ``(k,)`` float64 in ``[0, 1)`` (one per stratum, the caller's
    random draws: this function draws nothing and changes nothing).

    Trees of zero total are never chosen. Raises ValueError if every tree's total is zero.
    """
    totals = tree.total()
    total = float(totals.sum())
    if total <= 0:
        raise ValueError("cannot draw: every tree's total is zero")
    k = len(uniforms)
    targets = (np.arange(k) + uniforms) / k * total
    ends = np.cumsum(totals)
    trees = np.searchsorted(ends, targets, side="right")
    # Rounding can put a target at the very end: it belongs to the last positive stretch. (A
    # tree of zero total has an empty stretch, which ``side="right"`` never picks otherwise.)
    trees = np.minimum(trees, np.flatnonzero(totals > 0)[-1])
    local = targets - (ends[trees] - totals[trees])
    leaves = np.empty(k, dtype=np.int64)
    for chosen in np.unique(trees):
        mine = trees == chosen
        leaves[mine] = tree.find_in(int(chosen), local[mine])
    return trees.astype(np.int64), leaves
