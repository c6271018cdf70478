"""The complete episodes a ReplayBuffer holds, read back whole (for writing them as a dataset).

A ReplayBuffer does not record where episodes start; its ring does, implicitly. In each
sub-env's column the rows in use, oldest first, are runs of transition rows separated by rows
that hold no transition: the final observation of an ended episode (any end: terminated,
truncated, or declared with ``episode_ends``) and, last, the pending row of the newest
observation. So a maximal run of transition rows is one episode, or the held part of one:

- it ends completely if the row after it is a final-observation row, i.e. not the pending row
  at the write position (that episode is still open: left out);
- it starts completely if it is the first row ever written (the ring has not wrapped) or the
  row before it is a final-observation row. Once the ring has wrapped, the row before the
  oldest run is the one the ring wrote last, so whether that run began there can no longer be
  told: it is left out with the episodes cut by overwriting.

This holds on both add paths (the compiled one updates the same ring bookkeeping). It reads
the buffer's ring (``buffer._ring``: ``pos``, ``size``, ``valid``) and lock (``buffer._lock``);
those two private attributes are the only internals this package relies on. Frame-stacked
buffers are refused: their oldest rows also stop being transitions when frames they need are
overwritten, which this rule cannot tell from an episode end.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pearll.common.tree import tree_map


@dataclass
class StoredEpisode:
    """One complete stored episode of T steps, in the buffer's stored dtypes.

    ``observations`` ``(T + 1, *stored_shape)`` (a dict tree for Dict spaces; the last one is
    the true final observation); ``actions`` ``(T, *stored_shape)``; ``rewards`` ``(T,)``
    float32; ``terminations`` and ``truncations`` ``(T,)`` bool. ``env`` is the sub-env.
    """

    env: int
    observations: Any
    actions: np.ndarray
    rewards: np.ndarray
    terminations: np.ndarray
    truncations: np.ndarray


@dataclass
class EpisodeRuns:
    """Where each sub-env's complete episodes lie: ``rows[e]`` lists one row array per
    episode, the T transition rows followed by the row of its final observation."""

    rows: list[list[np.ndarray]]
    left_out: int  # episodes held only in part: open, or cut by overwriting

    @property
    def complete(self) -> int:
        return sum(len(per_env) for per_env in self.rows)


def episode_runs(buffer: Any) -> EpisodeRuns:
    """The rows of every complete episode ``buffer`` holds, sub-env by sub-env, oldest first.

    Call holding ``buffer._lock`` when other threads may add.
    """
    frame_stack = getattr(buffer, "frame_stack", None)
    if frame_stack is not None or not getattr(buffer, "spare_rows", False):
        what = f" with frame_stack={frame_stack.size}" if frame_stack is not None else ""
        raise ValueError(
            f"{type(buffer).__name__}{what}: only buffers that store whole observations in "
            "the ReplayBuffer layout can be read back as episodes (ReplayBuffer, "
            "PrioritizedReplayBuffer, HERBuffer, without frame stacks)"
        )
    ring = buffer._ring
    capacity = ring.capacity
    rows, left_out = [], 0
    for env in range(ring.num_envs):
        size, pos = int(ring.size[env]), int(ring.pos[env])
        in_use = (pos - size + np.arange(size)) % capacity  # oldest first
        valid = ring.valid[in_use, env]
        edges = np.diff(np.concatenate([[0], valid.astype(np.int8), [0]]))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        wrapped = size == capacity
        episodes = []
        for start, stop in zip(starts.tolist(), stops.tolist(), strict=True):
            # Wrapped, in_use[0] is the row written last (pending or passed over): see above.
            starts_whole = not wrapped or start >= 2
            ends_whole = stop < size  # the row after it is a final observation, not pending
            if starts_whole and ends_whole:
                episodes.append(in_use[start : stop + 1])
            else:
                left_out += 1
        rows.append(episodes)
    return EpisodeRuns(rows, left_out)


def read_episode(buffer: Any, env: int, rows: np.ndarray) -> StoredEpisode:
    """The stored values of one episode whose rows :func:`episode_runs` gave."""
    steps = rows[:-1]

    def column(array: np.ndarray, at: np.ndarray) -> np.ndarray:
        return array[at, env] if buffer.env_info.is_vector else array[at]

    return StoredEpisode(
        env=env,
        observations=tree_map(lambda a: column(a, rows), buffer.observations),
        actions=column(buffer.actions, steps),
        rewards=column(buffer.rewards, steps)[:, 0].copy(),
        terminations=column(buffer.dones, steps)[:, 0] != 0,
        truncations=column(buffer.truncateds, steps)[:, 0].copy(),
    )
