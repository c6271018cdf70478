"""Drawing and reading by slot over a replay buffer's whole pool: what a pooled reader needs.

A mixin of :class:`~pearll.buffers.replay.ReplayBuffer` (so of PrioritizedReplayBuffer and
HERBuffer too). The pool is every stored transition of every sub-env, as if one buffer of one
env held them; a *slot* is a ``(env, row)`` pair, ``row * num_envs + env`` as an index. The
replay service (:mod:`pearll.distributed`) stands on these methods alone: ``pool_mass`` to split
a batch between shards, ``draw_slots`` to draw a shard's part with the buffer's own sampler,
``read_transitions`` (here) and ``read_windows`` (sequence_sampling.py) to read it.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from pearll.buffers.base import locked
from pearll.buffers.core.checks import check_batch_size
from pearll.buffers.reading.output import convert, record_of
from pearll.buffers.sampling.uniform import draw_flat_rows
from pearll.common.enumerations import TrajectoryType, parse_trajectory_type
from pearll.common.tree import tree_map
from pearll.common.type_aliases import PoolMass, PoolSlots, Trajectories


class PoolSampling:
    """``pool_mass``, ``draw_slots`` and ``read_transitions`` (see the module docstring)."""

    relabels_in_sample: ClassVar[bool] = False
    """True for a buffer whose ``sample`` changes what it reads (HERBuffer relabels goals):
    ``read_transitions(*draw_slots(B)[:2])`` then returns stored transitions, not what
    ``sample`` would, and a reader that wants the latter must call ``sample``."""

    @locked
    def pool_mass(self) -> PoolMass:
        """The pool in figures: transitions stored, their total mass, the smallest mass (uniform
        replay: every transition has mass 1)."""
        count = len(self)
        return PoolMass(count, float(count), 1.0 if count else np.inf)

    @locked
    def draw_slots(self, batch_size: int) -> PoolSlots:
        """``batch_size`` slots drawn with replacement over the whole pool, each stored
        transition with probability ``mass / pool_mass().mass`` (uniform replay: ``1 / N``).

        The draw of ``sample(batch_size, flatten_env=True)`` on a vector env, from the same
        random stream (a vector buffer's ``draw_slots`` then ``read_transitions`` returns what
        that ``sample`` would have); it reads no data. Returns :class:`PoolSlots` (``envs``,
        ``rows`` int64 and ``masses`` float64, each ``(batch_size,)``). Raises RuntimeError if
        the buffer holds no transition, before drawing anything.
        """
        check_batch_size(batch_size)
        rows, envs = draw_flat_rows(self.rng, self._ring, batch_size)
        return PoolSlots(envs, rows, np.ones(batch_size))

    @locked
    def read_transitions(
        self, envs: Any, rows: Any, dtype: str | TrajectoryType = "numpy"
    ) -> Trajectories:
        """The stored transitions at the slots ``(envs[i], rows[i])`` (as ``draw_slots`` gave
        them): a record of ``(k, ...)`` arrays read as ``sample`` reads (n-step returns, frame
        stacks), never relabelled (see ``relabels_in_sample``).

        Raises TypeError / ValueError, reading nothing, unless ``envs`` and ``rows`` are 1-D
        integer arrays of one length naming slots that hold a stored transition now.
        """
        parse_trajectory_type(dtype)
        envs, rows = stored_slots(self, envs, rows)
        gathered = self._gather(rows[:, None], envs)
        fields = tree_map(lambda array: array[:, 0], gathered)
        return record_of(convert(fields, dtype, self._device_spec))


def stored_slots(buffer: Any, envs: Any, rows: Any) -> tuple[np.ndarray, np.ndarray]:
    """``(envs, rows)`` as int64 arrays, checked: 1-D, one length, slots of ``buffer`` that hold
    a stored transition (TypeError / ValueError otherwise)."""
    envs, rows = np.asarray(envs), np.asarray(rows)
    for name, value in (("envs", envs), ("rows", rows)):
        if value.dtype.kind not in "iu":
            raise TypeError(f"{name}: expected an array of integers, got dtype {value.dtype}")
    if envs.ndim != 1 or envs.shape != rows.shape:
        raise ValueError(
            f"envs, rows: expected two 1-D arrays of one length, got shapes {envs.shape} and "
            f"{rows.shape}"
        )
    envs, rows = envs.astype(np.int64, copy=False), rows.astype(np.int64, copy=False)
    # As unsigned, a negative index is huge: one compare per array checks both bounds.
    unsigned_envs, unsigned_rows = envs.view(np.uint64), rows.view(np.uint64)
    outside = (unsigned_envs >= buffer.num_envs) | (unsigned_rows >= buffer.buffer_size)
    if outside.any():
        raise ValueError(
            f"envs, rows: expected slots in [0, {buffer.num_envs}) x [0, {buffer.buffer_size}), "
            f"got (env, row) {_pairs(envs, rows, outside)}"
        )
    stored = buffer._ring.valid[rows, envs]
    if not stored.all():
        raise ValueError(
            "envs, rows: expected slots that hold a stored transition; (env, row) "
            f"{_pairs(envs, rows, ~stored)} hold none (overwritten since they were drawn?)"
        )
    return envs, rows


def _pairs(envs: np.ndarray, rows: np.ndarray, where: np.ndarray) -> list[tuple[int, int]]:
    """The first five ``(env, row)`` pairs where ``where``, for error messages."""
    return list(zip(envs[where][:5].tolist(), rows[where][:5].tolist(), strict=True))
