"""Drawing from a shard's pool of transitions, and merging the draws of many shards into one batch.

A shard's buffer may hold several sub-envs; the service treats every stored transition of every
sub-env of every shard as one pool, as if it were one buffer of one env. This module does the
two numpy halves of that, with no Ray in sight: :func:`draw` inside a shard, :func:`merge` in
the service front. :func:`shard_counts` splits a batch between shards.

Why the merged batch has the distribution of one global buffer
--------------------------------------------------------------
Let shard s hold ``N_s`` transitions of total mass ``M_s`` (uniform replay: every transition has
mass 1, so ``M_s = N_s``; prioritized replay: transition i has mass ``p_i``, its stored
``(priority + eps) ** alpha``, and ``M_s`` is the sum of its sub-envs' sum-tree totals). Write
``N = sum N_s`` and ``M = sum M_s``. The front splits a batch of B between shards with a
multinomial draw of probabilities ``M_s / M``; shard s then draws its ``k_s`` samples each with
probability ``p_i / M_s`` (its sub-env e is chosen with probability ``M_{s,e} / M_s``, then the
transition in that sub-env's sum tree with probability ``p_i / M_{s,e}``). A multinomial split
followed by independent draws within each part is the same as B independent draws from the
mixture, so, after the front shuffles the batch, each sample is transition i with probability
``(M_s / M) * (p_i / M_s) = p_i / M``: the probability one buffer holding all N transitions
would give it. (Shards draw stratified within themselves, as PrioritizedReplayBuffer does
within a sub-env: lower variance, same marginal probability for each draw.)

Sequence windows (``sample_sequences``) are anchored at draws made exactly so: anchor i with
probability ``p_i / M``. Each shard builds the windows at its anchors from its own rows, as its
buffer's ``sample_sequences`` would (a window never crosses shards: a shard is one stream of
steps), and remembers them, so sequence priority updates routed back to it refer to the steps
it handed out. A window's weight is its anchor's.

Importance weights are the global ones of that single buffer: with ``P(i) = p_i / M``,
``w_i = (N * P(i)) ** -beta / max_j (N * P(j)) ** -beta``. The largest weight belongs to the
smallest positive mass ``p_min`` over all shards, so ``N`` and ``M`` cancel:
``w_i = (p_i / p_min) ** -beta``, in (0, 1]. So each shard returns, besides the transitions,
their masses ``p_i`` and its own smallest mass; the front needs nothing else to weigh them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pearll.buffers.prioritized import PrioritizedReplayBuffer
from pearll.common.tree import tree_map
from pearll.common.type_aliases import (
    DictTrajectories,
    PoolMass,
    PrioritizedTrajectories,
    SequenceTrajectories,
    Trajectories,
)

__all__ = ["PoolMass", "ShardDraw", "draw", "draw_windows", "merge", "pool_mass", "pooled"]

# The record fields that hold per-sample arrays (``extras`` and ``discounts`` may be None).
_FIELDS = ("observations", "actions", "rewards", "next_observations", "dones", "extras")
# The same for windows: ``(k, T, ...)`` arrays, the masks ``(k, T)``.
_WINDOW_FIELDS = (*_FIELDS, "truncateds", "mask", "learn_mask", "is_first")


@dataclass
class ShardDraw:
    """``k`` transitions (or windows) drawn by one shard: fields ``(k, ...)``, local slots (the
    anchors' for windows) and masses."""

    fields: dict[str, Any]
    slots: np.ndarray  # (k,) int64 ``row * num_envs + env``, the shard buffer's own indices
    masses: np.ndarray  # (k,) float64 p_i (1 for uniform replay)
    min_mass: float


def pooled(buffer: Any) -> bool:
    """Whether :func:`draw` can pool ``buffer``'s sub-envs: it draws and reads by slot
    (``draw_slots``, ``read_transitions``) and its ``sample`` reads what those read.

    A buffer that declares ``relabels_in_sample`` (HER relabels goals there) is drawn with its
    own ``sample`` instead, which is only the pooled distribution for a single env.
    """
    return hasattr(buffer, "draw_slots") and not getattr(buffer, "relabels_in_sample", True)


def prioritized(buffer: Any) -> bool:
    return isinstance(buffer, PrioritizedReplayBuffer)


def pool_mass(buffer: Any) -> PoolMass:
    if hasattr(buffer, "pool_mass"):
        return buffer.pool_mass()
    count = len(buffer)
    return PoolMass(count, float(count), 1.0 if count else np.inf)


def draw(buffer: Any, k: int) -> ShardDraw:
    """``k`` transitions of ``buffer``'s pool, each with probability ``p_i / M_s`` (see module),
    drawn by the buffer's own sampler from its own random stream."""
    if not pooled(buffer):
        return _draw_by_sample(buffer, k)
    envs, rows, masses = buffer.draw_slots(k)
    batch = buffer.read_transitions(envs, rows)
    fields = {name: getattr(batch, name) for name in (*_FIELDS, "discounts")}
    return ShardDraw(fields, rows * buffer.num_envs + envs, masses, buffer.pool_mass().min_mass)


def draw_windows(buffer: Any, k: int, length: int, burn_in: int, boundary: str) -> ShardDraw:
    """``k`` sequence windows anchored at draws of ``buffer``'s pool (as :func:`draw` draws
    transitions), each built by the buffer from its own rows (``read_windows``: a window
    never leaves its shard), and remembered there for sequence priority updates."""
    if not hasattr(buffer, "read_windows"):
        raise TypeError(f"{type(buffer).__name__} has no sequence windows (read_windows)")
    envs, rows, masses = buffer.draw_slots(k)
    batch = buffer.read_windows(envs, rows, length, burn_in=burn_in, boundary=boundary)
    fields = {name: getattr(batch, name) for name in _WINDOW_FIELDS}
    return ShardDraw(fields, batch.indices, masses, buffer.pool_mass().min_mass)


def _draw_by_sample(buffer: Any, k: int) -> ShardDraw:
    """A buffer with its own ``sample`` (HER): single-env shards only (checked at creation)."""
    batch = buffer.sample(k)
    fields = {name: getattr(batch, name) for name in _FIELDS}
    fields["discounts"] = getattr(batch, "discounts", None)
    slots = np.asarray(getattr(batch, "indices", np.zeros(k, dtype=np.int64)))
    return ShardDraw(fields, slots, np.ones(k), 1.0)


def shard_counts(masses: np.ndarray, batch_size: int, rng: np.random.Generator) -> np.ndarray:
    """How many of ``batch_size`` samples each shard draws: multinomial in its share of mass."""
    total = masses.sum()
    if total <= 0:
        raise RuntimeError("cannot sample: the service holds no transition (or only zero priority)")
    return rng.multinomial(batch_size, masses / total)


def merge(
    draws: dict[int, ShardDraw],
    num_shards: int,
    rng: np.random.Generator,
    beta: float | None,
    min_mass: float = np.inf,
    windows: bool = False,
) -> Trajectories | SequenceTrajectories:
    """One shuffled ``(B, ...)`` batch from the shards' draws.

    With ``beta`` (prioritized replay) the record is :class:`PrioritizedTrajectories` with global
    ``indices`` (``slot * num_shards + shard``) and the global weights of the module docstring;
    ``min_mass`` is the smallest mass the front heard of from shards not in ``draws``. With
    ``windows`` (draws of :func:`draw_windows`) it is :class:`SequenceTrajectories`, whose
    global ``indices`` (the anchors') are there with uniform replay too.
    """
    shards = sorted(draws)
    parts = [draws[s] for s in shards]
    fields = {
        name: tree_map(lambda *arrays: np.concatenate(arrays), *(p.fields[name] for p in parts))
        if parts[0].fields.get(name) is not None
        else None
        for name in parts[0].fields
    }
    order = rng.permutation(sum(len(p.slots) for p in parts))
    fields = {
        name: None if value is None else tree_map(lambda a: a[order], value)
        for name, value in fields.items()
    }
    if beta is None and not windows:
        record = DictTrajectories if isinstance(fields["observations"], dict) else Trajectories
        return record(**fields)
    indices = np.concatenate([p.slots * num_shards + s for s, p in zip(shards, parts, strict=True)])
    weights = None
    if beta is not None:
        masses = np.concatenate([p.masses for p in parts])
        min_mass = min(min_mass, *(p.min_mass for p in parts), masses.min())
        weights = ((masses / min_mass) ** -beta)[order, None].astype(np.float32)
    record = SequenceTrajectories if windows else PrioritizedTrajectories
    return record(**fields, indices=indices[order], weights=weights)


def split_indices(indices: np.ndarray, num_shards: int) -> dict[int, np.ndarray]:
    """Global indices -> ``{shard: positions}`` (positions into the flat ``indices``)."""
    shards = indices % num_shards
    return {int(s): np.flatnonzero(shards == s) for s in np.unique(shards)}


def route_priorities(
    indices: np.ndarray, priorities: np.ndarray, num_shards: int
) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    """``{shard: (slots, values)}`` for ``update_priorities``, checked before anything is sent.

    ``priorities`` is shaped like ``indices`` (or with a trailing axis of 1): finite values
    >= 0; or, for ``sample_sequences`` batches, like ``indices`` plus ``(length,)``: finite
    signed TD errors, ``values`` then ``(n, length)`` per shard. Raises ValueError otherwise.
    """
    if indices.dtype.kind not in "iu" or (indices < 0).any():
        raise ValueError("indices: expected the non-negative integers sample returned")
    sequence = (
        priorities.ndim == indices.ndim + 1
        and priorities.shape[:-1] == indices.shape
        and priorities.shape[-1] > 1
    )
    if not sequence and priorities.shape not in (indices.shape, (*indices.shape, 1)):
        raise ValueError(
            f"priorities: expected shape {indices.shape} (that of indices), {(*indices.shape, 1)}"
            f" or {(*indices.shape, 'length')} (TD errors of sequences), got {priorities.shape}"
        )
    if priorities.dtype.kind not in "iuf" or not np.isfinite(priorities).all():
        raise ValueError("priorities: expected finite real numbers")
    if not sequence and (priorities < 0).any():
        raise ValueError("priorities: expected values >= 0 (or sequence TD errors)")
    indices = indices.reshape(-1)
    values = priorities.reshape(len(indices), -1) if sequence else priorities.reshape(-1)
    return {
        shard: (indices[where] // num_shards, values[where])
        for shard, where in split_indices(indices, num_shards).items()
    }
