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
from pearll.buffers.replay import ReplayBuffer
from pearll.buffers.sampling.uniform import draw_rows_of
from pearll.common.tree import tree_map
from pearll.common.type_aliases import DictTrajectories, PrioritizedTrajectories, Trajectories

# The record fields that hold per-sample arrays (``extras`` and ``discounts`` may be None).
_FIELDS = ("observations", "actions", "rewards", "next_observations", "dones", "extras")


@dataclass
class PoolMass:
    """What the front needs from a shard to split a batch: see the module docstring."""

    count: int  # N_s, transitions stored
    mass: float  # M_s, the total the shard draws in proportion to
    min_mass: float  # the smallest positive transition mass (inf when the shard is empty)


@dataclass
class ShardDraw:
    """``k`` transitions drawn by one shard: fields ``(k, ...)``, local slots and masses."""

    fields: dict[str, Any]
    slots: np.ndarray  # (k,) int64 ``row * num_envs + env``, the shard buffer's own indices
    masses: np.ndarray  # (k,) float64 p_i (1 for uniform replay)
    min_mass: float


def pooled(buffer: Any) -> bool:
    """Whether :func:`draw` can pool ``buffer``'s sub-envs (its ``sample`` is the stock one).

    Subclasses that change what ``sample`` returns (HER relabels goals there) are drawn with
    their own ``sample`` instead, which is only the pooled distribution for a single env.
    """
    return type(buffer).sample in (ReplayBuffer.sample, PrioritizedReplayBuffer.sample)


def prioritized(buffer: Any) -> bool:
    return isinstance(buffer, PrioritizedReplayBuffer)


def pool_mass(buffer: Any) -> PoolMass:
    count = len(buffer)
    if not prioritized(buffer):
        return PoolMass(count, float(count), 1.0 if count else np.inf)
    return PoolMass(count, float(buffer._tree.total().sum()), float(buffer._tree.min().min()))


def draw(buffer: Any, k: int, rng: np.random.Generator) -> ShardDraw:
    """``k`` transitions of ``buffer``'s pool, each with probability ``p_i / M_s`` (see module)."""
    if not pooled(buffer):
        return _draw_by_sample(buffer, k)
    if prioritized(buffer):
        totals = buffer._tree.total()
        envs, rows = _prioritized_rows(buffer, totals, k, rng)
        masses = buffer._tree.get(envs, rows)
        min_mass = float(buffer._tree.min().min())
    else:
        envs, rows = _uniform_rows(buffer, k, rng)
        masses, min_mass = np.ones(k), 1.0
    gathered = buffer._gather(rows[:, None], envs)
    fields = tree_map(lambda a: a[:, 0], gathered)
    return ShardDraw(fields, rows * buffer.num_envs + envs, masses, min_mass)


def _prioritized_rows(
    buffer: Any, totals: np.ndarray, k: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified over the shard's mass: the k strata of ``[0, M_s)`` laid across sub-envs."""
    if totals.sum() <= 0:
        raise RuntimeError("cannot sample: every priority in the shard is zero; use eps > 0")
    targets = (np.arange(k) + rng.random(k)) / k * totals.sum()
    bounds = np.cumsum(totals)
    envs = np.minimum(np.searchsorted(bounds, targets, side="right"), len(totals) - 1)
    # Rounding can put a target in a sub-env of zero mass: move it to the last one with mass.
    envs = np.where(totals[envs] > 0, envs, np.flatnonzero(totals > 0)[-1])
    rows = np.empty(k, dtype=np.int64)
    for env in np.unique(envs):
        mine = envs == env
        local = targets[mine] - (bounds[env] - totals[env])
        rows[mine] = buffer._tree.find_in(int(env), np.clip(local, 0.0, None))
    return envs, rows


def _uniform_rows(buffer: Any, k: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    counts = buffer.counts
    if counts.sum() == 0:
        raise RuntimeError("cannot sample: the shard holds no transition")
    envs = rng.choice(len(counts), size=k, p=counts / counts.sum())
    rows = np.empty(k, dtype=np.int64)
    for env in np.unique(envs):
        mine = envs == env
        rows[mine] = draw_rows_of(rng, buffer._ring, int(env), int(mine.sum()))
    return envs, rows


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
) -> Trajectories:
    """One shuffled ``(B, ...)`` batch from the shards' draws.

    With ``beta`` (prioritized replay) the record is :class:`PrioritizedTrajectories` with global
    ``indices`` (``slot * num_shards + shard``) and the global weights of the module docstring;
    ``min_mass`` is the smallest mass the front heard of from shards not in ``draws``.
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
    if beta is None:
        record = DictTrajectories if isinstance(fields["observations"], dict) else Trajectories
        return record(**fields)
    indices = np.concatenate([p.slots * num_shards + s for s, p in zip(shards, parts, strict=True)])
    masses = np.concatenate([p.masses for p in parts])
    min_mass = min(min_mass, *(p.min_mass for p in parts), masses.min())
    weights = (masses / min_mass) ** -beta
    return PrioritizedTrajectories(
        **fields, indices=indices[order], weights=weights[order, None].astype(np.float32)
    )


def split_indices(indices: np.ndarray, num_shards: int) -> dict[int, np.ndarray]:
    """Global indices -> ``{shard: positions}`` (positions into the flat ``indices``)."""
    shards = indices % num_shards
    return {int(s): np.flatnonzero(shards == s) for s in np.unique(shards)}
