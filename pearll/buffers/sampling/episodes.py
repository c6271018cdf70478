"""Episode bookkeeping for HER: which episode each row belongs to and where each episode ends.

Rows are counted in absolute terms per sub-env: absolute row ``a`` lives in ring row
``a % capacity`` and ``written[e]`` is the absolute row of the pending (newest) observation, so
the rows still held are ``max(0, written - capacity + 1) .. written``. Episodes get consecutive
ids per sub-env; ``episode_of[row, e]`` is the id of the transition stored in a row and
``final_row[id % capacity, e]`` the absolute row of a finished episode's final observation. In
the ReplayBuffer layout the next episode's first observation follows it directly, so episode
``id`` starts at ``final_row[id - 1] + 1`` (at 0 for the first episode).

Why ``capacity`` slots suffice: every episode with a transition still held occupies at least two
held rows (the transition and the observation after it), so fewer than ``capacity / 2 + 2``
consecutive ids are ever needed at once. Everything is O(1) per step and per sampled row.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numba import njit

from pearll.buffers.core.ring import WritePlan


@dataclass
class EpisodeIndex:
    """Per sub-env episode ids of rows and final rows of episodes (plain, visible state)."""

    capacity: int
    written: np.ndarray  # (E,) int64: absolute row of the pending observation (rows advanced)
    current: np.ndarray  # (E,) int64: id of the episode the next step joins (episodes ended)
    episode_of: np.ndarray  # (capacity, E) int64: episode id of the transition in each row
    final_row: np.ndarray  # (capacity, E) int64: absolute final row of episode id, at id % capacity

    @classmethod
    def empty(cls, capacity: int, num_envs: int) -> EpisodeIndex:
        zeros = np.zeros(num_envs, dtype=np.int64)
        table = np.zeros((capacity, num_envs), dtype=np.int64)
        return cls(capacity, zeros.copy(), zeros.copy(), table, table.copy())

    @staticmethod
    def bytes_for(capacity: int, num_envs: int) -> int:
        return 2 * capacity * num_envs * np.dtype(np.int64).itemsize

    # --- the part protocol (core/part.py) ---------------------------------------------------

    @property
    def nbytes(self) -> int:
        return self.episode_of.nbytes + self.final_row.nbytes

    def reset(self) -> None:
        """No episode, no row written: as :meth:`empty`, in place."""
        for array in (self.written, self.current, self.episode_of, self.final_row):
            array[...] = 0

    def state(self) -> dict:
        """``episodes``: every field (counters, episode ids of rows, final rows of episodes)."""
        return {"episodes": {f.name: getattr(self, f.name) for f in fields(self)}}

    def set_state(self, state: dict) -> None:
        saved = state["episodes"]
        for name in ("written", "current", "episode_of", "final_row"):
            getattr(self, name)[...] = saved[name]

    def record(self, plan: WritePlan) -> None:
        """Update for a ``(T, E)`` batch about to be committed with ``plan``.

        Ids and absolute rows are worked out for every kept step (``plan.keep``), also those
        the plan drops for lack of room, so the episode count and the final rows stay exact.
        """
        keep, ended = plan.keep, plan.ended.astype(np.int64)
        ids = self.current + np.cumsum(ended, axis=0) - ended
        rows_used = keep.astype(np.int64) + ended  # a transition, plus a final row at an end
        absolute = self.written + np.cumsum(rows_used, axis=0) - rows_used
        self.episode_of[plan.step_row, plan.step_env] = ids[plan.step_t, plan.step_env]
        self.current += ended.sum(axis=0)
        # Only the newest `capacity` ends can still matter; keeping them makes the slots unique.
        end_t, end_env = np.nonzero(ended.astype(bool) & (ids >= self.current - self.capacity))
        slots = ids[end_t, end_env] % self.capacity
        self.final_row[slots, end_env] = absolute[end_t, end_env] + 1
        self.written += plan.advance

    def record_step(self, rows: np.ndarray, envs: np.ndarray, ended: np.ndarray) -> None:
        """:meth:`record` for one step (T = 1) of the sub-envs ``envs`` written at ``rows``
        (those not listed had a dropped reset step); ``ended`` ``(E,)``: each step ended its
        episode. Same result as :meth:`record` of that step's plan (tested)."""
        _record_step(self.written, self.current, self.episode_of, self.final_row, rows, envs, ended)

    def end(self, envs: np.ndarray) -> None:
        """End the running episodes of ``envs`` at their pending observation (which becomes the
        final one) without a new step: ``ReplayBuffer.end_episodes`` (the ring moves one row)."""
        ids = self.current[envs]
        self.final_row[ids % self.capacity, envs] = self.written[envs]
        self.current[envs] += 1
        self.written[envs] += 1

    def rebuild(self, valid: np.ndarray, pos: np.ndarray, size: np.ndarray) -> None:
        """Work the index out again from a ring in the ReplayBuffer layout (its ``valid``
        ``(capacity, E)``, ``pos`` and ``size`` ``(E,)``): the repair after an add that was
        interrupted before the index followed it (writer.py).

        A held row that is not a transition ends an episode there (it holds that episode's
        final observation), including rows an interrupted write invalidated and never
        committed: no transition then takes its goals from them. Absolute rows restart at
        ``pos + capacity`` for the pending row and episode ids at 1; only rows and ids relative
        to each other mean anything, so :meth:`extents` of every stored transition is what it
        was (tested), but one thing the ring does not know: in a full ring, whether the oldest
        held row began its episode. The oldest episode's ``first`` is then that row, so its
        first observation may be among the goals of EPISODE (still of the same episode). One
        compiled call (an interrupt cannot stop it half way).
        """
        _rebuild(valid, pos, size, self.written, self.current, self.episode_of, self.final_row)

    def extents(
        self, rows: np.ndarray, envs: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Absolute rows around the transitions in ring rows ``rows`` ``(E, B)`` of sub-envs
        ``envs`` (broadcast to ``rows``; default: row e of ``rows`` is sub-env e).

        Returns ``(at, first, last)``, each ``(E, B)`` int64: the transition's own row; the
        first held row of its episode after the episode's first observation (a later row if the
        episode's start was overwritten); the row of the episode's last observation, which is
        the final observation of a finished episode or the newest observation of a running one.
        The observations of rows ``first .. last`` are the episode's steps 1 .. T still held.
        """
        if envs is None:
            envs = np.arange(len(self.written))[:, None]
        pending = self.written[envs]
        at = pending - (pending - rows) % self.capacity
        episode = self.episode_of[rows, envs]
        finished = episode < self.current[envs]
        last = np.where(finished, self.final_row[episode % self.capacity, envs], pending)
        previous_final = self.final_row[(episode - 1) % self.capacity, envs]
        start = np.where(episode > 0, previous_final + 1, 0)
        oldest_held = np.maximum(pending - self.capacity + 1, 0)
        first = np.maximum(start + 1, oldest_held)
        return at, first, last


@njit(cache=True, nogil=True)
def _record_step(written, current, episode_of, final_row, rows, envs, ended):
    """EpisodeIndex.record_step's loop: per sub-env written, its row joins the current
    episode; an ended one's final row is the row after, and the next episode begins."""
    capacity = episode_of.shape[0]
    for i in range(len(envs)):
        e = envs[i]
        episode_of[rows[i], e] = current[e]
        written[e] += 1
        if ended[e]:
            final_row[current[e] % capacity, e] = written[e]
            current[e] += 1
            written[e] += 1


@njit(cache=True, nogil=True)
def _rebuild(valid, pos, size, written, current, episode_of, final_row):
    """EpisodeIndex.rebuild's loop: per sub-env, its held rows oldest first. Episode 0 is a
    stand-in that ends before the oldest held row, so the first episode held starts there (not
    at row 0, which :meth:`EpisodeIndex.extents` assumes of episode 0)."""
    capacity, num_envs = valid.shape
    for e in range(num_envs):
        pending = pos[e] + capacity  # any absolute row of the pending row's ring row will do
        held = min(size[e], capacity - 1)  # rows before the pending one
        # Before a full ring's oldest held row its episode may have started earlier (the rows
        # are gone); in a ring not yet full the oldest row is the first episode's start.
        final_row[0, e] = pending - held - (2 if size[e] == capacity else 1)
        episode = 1
        for i in range(held, 0, -1):
            absolute = pending - i
            row = absolute % capacity
            if valid[row, e]:
                episode_of[row, e] = episode
            else:  # the final observation of the episode so far (or an invalidated row)
                final_row[episode % capacity, e] = absolute
                episode += 1
        written[e], current[e] = pending, episode
