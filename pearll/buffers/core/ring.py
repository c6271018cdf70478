"""Index bookkeeping: where each sub-env writes next, which rows hold transitions, in what order.

Each sub-env owns one column of the storage arrays ``(capacity, num_envs, ...)`` and writes it
as a ring: ``pos[e]`` is the next row to write and ``size[e]`` the number of rows in use, so the
rows of sub-env e from oldest to newest are ``(pos[e] - size[e] + i) % capacity``.
``valid[row, e]`` says whether a row starts a stored transition. Sub-envs advance independently
because NEXT_STEP reset steps are dropped and, with ``spare_rows``, each episode end costs a row.

``spare_rows`` is the ReplayBuffer layout, where one observation array holds observations and
next observations: a transition at row r has its next observation at row r + 1. When an episode
ends, its final observation is kept in the row after the last transition, and that row is
marked as not a transition; the next episode starts one row later. The row at ``pos`` always
holds the newest next observation and is never valid. Without spare rows (RolloutBuffer) every
written row is a transition.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np
from numba import njit

# The smallest ring with spare rows (the ReplayBuffer layout) that stores every transition it
# is given, terminal ones included, until newer ones overwrite it.
MIN_SPARE_ROWS_CAPACITY = 3


@dataclass
class WritePlan:
    """Where a batch of ``(T, E)`` steps goes. Each triple of arrays lists (step, env, row)."""

    step_t: np.ndarray
    step_env: np.ndarray
    step_row: np.ndarray
    # Steps whose next observation needs a row of its own (spare-row layout only): each episode's
    # last step and each sub-env's newest step.
    next_t: np.ndarray
    next_env: np.ndarray
    next_row: np.ndarray
    advance: np.ndarray  # (E,) rows each sub-env moves forward
    ended_last: np.ndarray  # (E,) whether each sub-env's last step ended an episode
    keep: np.ndarray  # (T, E) the steps kept (not NEXT_STEP reset steps)
    ended: np.ndarray  # (T, E) kept steps that ended an episode


@dataclass
class Ring:
    """Cursor, fill level and transition mask of every sub-env (plain, visible state)."""

    capacity: int
    spare_rows: bool
    pos: np.ndarray  # (E,) int64: next row to write
    size: np.ndarray  # (E,) int64: rows in use (transitions, final and pending observations)
    valid: np.ndarray  # (capacity, E) bool: the row starts a stored transition
    count: np.ndarray  # (E,) int64: stored transitions, valid.sum(axis=0)
    prev_ended: np.ndarray  # (E,) bool: the last step given ended an episode

    @classmethod
    def empty(cls, capacity: int, num_envs: int, spare_rows: bool) -> Ring:
        # With spare rows a terminal step takes two rows (its observation and the final one)
        # beside the pending row: a smaller ring would drop every terminal step unseen.
        minimum = MIN_SPARE_ROWS_CAPACITY if spare_rows else 1
        if capacity < minimum:
            why = (
                " (a terminal transition needs its row, its final observation's row and the "
                "newest next observation's row)"
                if spare_rows
                else ""
            )
            raise ValueError(
                f"buffer_size: expected an integer >= {minimum} rows per sub-env{why}, got "
                f"{capacity}"
            )
        zeros = np.zeros(num_envs, dtype=np.int64)
        return cls(
            capacity=capacity,
            spare_rows=spare_rows,
            pos=zeros.copy(),
            size=zeros.copy(),
            valid=np.zeros((capacity, num_envs), dtype=bool),
            count=zeros.copy(),
            prev_ended=np.zeros(num_envs, dtype=bool),
        )

    @property
    def num_envs(self) -> int:
        return len(self.pos)

    @staticmethod
    def bytes_for(capacity: int, num_envs: int) -> int:
        """What :attr:`nbytes` counts for a ring of this size: its transition mask (the cursors
        are a few bytes per sub-env, not counted)."""
        return capacity * num_envs

    # --- the part protocol (core/part.py) ---------------------------------------------------

    @property
    def nbytes(self) -> int:
        return self.valid.nbytes

    def reset(self) -> None:
        self.clear()

    def state(self) -> dict:
        """``ring``: every field (cursors, fill levels, the transition mask)."""
        return {"ring": {f.name: getattr(self, f.name) for f in fields(self)}}

    def set_state(self, state: dict) -> None:
        self.load(state["ring"])

    def clear(self, keep_episode_state: bool = False) -> None:
        """Forget every row, in place; ``keep_episode_state`` keeps ``prev_ended`` (whether
        each sub-env's last step ended an episode, which decides NEXT_STEP reset steps)."""
        self.pos[:] = 0
        self.size[:] = 0
        self.valid[:] = False
        self.count[:] = 0
        if not keep_episode_state:
            self.prev_ended[:] = False

    def load(self, state: dict) -> None:
        """Take the arrays of a saved ring (``state``: its fields), copied into this ring's own.

        Raises ValueError if a saved array's shape or the capacity differs from this ring's.
        """
        if int(state["capacity"]) != self.capacity or bool(state["spare_rows"]) != self.spare_rows:
            raise ValueError(
                f"ring: expected capacity {self.capacity} and spare_rows {self.spare_rows}, got "
                f"{state['capacity']} and {state['spare_rows']}"
            )
        for name in ("pos", "size", "valid", "count", "prev_ended"):
            mine, saved = getattr(self, name), np.asarray(state[name])
            if saved.shape != mine.shape:
                raise ValueError(f"ring.{name}: expected shape {mine.shape}, got {saved.shape}")
            mine[...] = saved

    def plan(self, keep: np.ndarray, ended: np.ndarray) -> WritePlan:
        """Rows for a ``(T, E)`` batch; ``keep`` drops reset steps, ``ended`` is done|truncated.

        If a sub-env's steps need more rows than the ring has, only the newest ones that fit are
        written: the older ones would be overwritten within the same batch anyway.
        """
        ended = ended & keep
        rows_used = keep.astype(np.int64)
        if self.spare_rows:
            rows_used += ended
        offset = np.cumsum(rows_used, axis=0) - rows_used
        advance = rows_used.sum(axis=0)
        rows_from_here = advance - offset
        room = self.capacity - 1 if self.spare_rows else self.capacity
        written = keep & (rows_from_here <= room)
        step_t, step_env = np.nonzero(written)
        step_row = (self.pos[step_env] + offset[step_t, step_env]) % self.capacity
        if self.spare_rows:
            newest = written & (rows_from_here == rows_used)
            needs_row = written & (ended | newest)
            next_t, next_env = np.nonzero(needs_row)
            next_row = (self.pos[next_env] + offset[next_t, next_env] + 1) % self.capacity
        else:
            next_t = next_env = next_row = np.zeros(0, dtype=np.int64)
        ended_last = np.zeros(self.num_envs, dtype=bool)
        if len(ended):
            ended_last = ended[-1].copy()
        return WritePlan(
            step_t, step_env, step_row, next_t, next_env, next_row, advance, ended_last,
            keep, ended,
        )  # fmt: skip

    def commit(self, plan: WritePlan) -> None:
        """Make the plan's new rows transitions and move the cursors, once its data is written.

        The slots the write passed over (:meth:`rows_passed_over`) must already have been
        invalidated (:meth:`invalidate_slots`), before the write began. One compiled call, so
        an interrupt never leaves ``valid``, ``count`` and the cursors disagreeing.
        """
        _commit(self.valid, self.count, self.pos, self.size, self.prev_ended,
                plan.step_row, plan.step_env, plan.advance, plan.ended_last)  # fmt: skip

    def invalidate_slots(self, rows: np.ndarray, envs: np.ndarray) -> None:
        """Stop treating the slots ``(rows[i], envs[i])`` as transitions (any of them, repeated
        or not, valid or not); ``valid`` and ``count`` change together (one compiled call)."""
        _invalidate(self.valid, self.count, rows.astype(np.int64), envs.astype(np.int64))

    def rows_passed_over(self, advance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every ``(row, env)`` a write advancing ``advance`` (E,) rows overwrites, including the
        new pending row; distinct."""
        span = np.minimum(advance + (1 if self.spare_rows else 0), self.capacity)
        span[advance == 0] = 0
        steps = np.arange(span.max(initial=0))
        rows = (self.pos[:, None] + steps[None, :]) % self.capacity
        inside = steps[None, :] < span[:, None]
        envs = np.broadcast_to(np.arange(self.num_envs)[:, None], rows.shape)
        return rows[inside], envs[inside]

    def ordered_rows(self, env: int) -> np.ndarray:
        """The transition rows of sub-env ``env``, oldest first."""
        rows = (self.pos[env] - self.size[env] + np.arange(self.size[env])) % self.capacity
        return rows[self.valid[rows, env]]

    def recent_rows(self, k: int) -> np.ndarray:
        """``(E, k)`` rows of each sub-env's ``k`` newest transitions, oldest first."""
        short = np.flatnonzero(self.count < k)
        if len(short):
            raise ValueError(
                f"asked for the {k} most recent transitions, but sub-envs {short.tolist()} hold "
                f"only {self.count[short].tolist()}"
            )
        return np.stack([self._recent_rows_of(env, k) for env in range(self.num_envs)])

    def _recent_rows_of(self, env: int, k: int) -> np.ndarray:
        # Look back over a window that doubles until it holds k transitions: invalid rows are
        # rare (one per episode end), so this usually reads only about k rows.
        window = k
        while True:
            window = min(window, int(self.size[env]))
            rows = (self.pos[env] - window + np.arange(window)) % self.capacity
            rows = rows[self.valid[rows, env]]
            if len(rows) >= k:
                return rows[len(rows) - k :]
            if window == self.size[env]:  # count and valid disagree: never loop forever
                raise RuntimeError(
                    f"ring of sub-env {env}: count says {self.count[env]} transitions, but only "
                    f"{len(rows)} rows are valid"
                )
            window *= 2

    def require_transitions(self) -> None:
        """Raise RuntimeError if some sub-env holds no transition yet."""
        if 0 not in self.count.tolist():  # cheaper than a numpy reduction over a few values
            return
        empty = np.flatnonzero(self.count == 0)
        if len(empty):
            raise RuntimeError(
                "cannot sample: the buffer holds no transition"
                + (f" for sub-envs {empty.tolist()}" if self.num_envs > 1 else "")
                + "; add some first"
            )


# The two ways a write changes the bookkeeping, each one compiled call (Python's signal handlers
# run between bytecodes, never inside one) that keeps count == valid.sum(axis=0).


@njit(cache=True, nogil=True)
def _invalidate(valid, count, rows, envs):
    for i in range(len(rows)):
        if valid[rows[i], envs[i]]:
            valid[rows[i], envs[i]] = False
            count[envs[i]] -= 1


@njit(cache=True, nogil=True)
def _commit(valid, count, pos, size, prev_ended, step_row, step_env, advance, ended_last):
    capacity = valid.shape[0]
    for i in range(len(step_row)):
        if not valid[step_row[i], step_env[i]]:
            valid[step_row[i], step_env[i]] = True
            count[step_env[i]] += 1
    for e in range(len(pos)):
        pos[e] = (pos[e] + advance[e]) % capacity
        size[e] = min(size[e] + advance[e], capacity)
        prev_ended[e] = ended_last[e]
