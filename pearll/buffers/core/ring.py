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

from dataclasses import dataclass

import numpy as np

from pearll.buffers.sampling.uniform import draw_rows, draw_rows_of

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

    def commit(self, plan: WritePlan) -> tuple[np.ndarray, np.ndarray]:
        """Update the bookkeeping once the plan's data is written.

        Returns the ``(rows, envs)`` the write passed over (overwritten or made pending): they
        hold no transition now unless they are among ``plan.step_row``.
        """
        touched_rows, touched_envs = self._rows_passed_over(plan.advance)
        lost = np.bincount(
            touched_envs[self.valid[touched_rows, touched_envs]], minlength=self.num_envs
        )
        self.valid[touched_rows, touched_envs] = False
        self.valid[plan.step_row, plan.step_env] = True
        self.count += np.bincount(plan.step_env, minlength=self.num_envs) - lost
        self.pos = (self.pos + plan.advance) % self.capacity
        self.size = np.minimum(self.size + plan.advance, self.capacity)
        self.prev_ended = plan.ended_last
        return touched_rows, touched_envs

    def invalidate(self, rows: np.ndarray, envs: np.ndarray) -> None:
        """Stop treating the (distinct, valid) slots ``(rows[i], envs[i])`` as transitions."""
        self.valid[rows, envs] = False
        self.count -= np.bincount(envs, minlength=self.num_envs)

    def _rows_passed_over(self, advance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every (row, env) the write overwrites, including the new pending row."""
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
            window *= 2

    def uniform_rows(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """``(E, batch_size)`` rows drawn uniformly, with replacement, per sub-env (see
        :func:`~pearll.buffers.sampling.uniform.draw_rows`)."""
        return draw_rows(rng, self, batch_size)

    def uniform_rows_of(self, rng: np.random.Generator, env: int, batch_size: int) -> np.ndarray:
        """``(batch_size,)`` rows of sub-env ``env`` alone, drawn uniformly, with replacement
        (see :func:`~pearll.buffers.sampling.uniform.draw_rows_of`)."""
        return draw_rows_of(rng, self, env, batch_size)

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
