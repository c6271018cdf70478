"""Sequence windows: which rows each window of ``burn_in + length`` steps reads.

A window is anchored at a stored transition (its first learned step). Its learned part is the
``length`` steps from the anchor on, its burn-in the ``burn_in`` steps before the anchor in the
same episode; a step that does not exist (before the episode's first stored step, after its
last, after the newest stored step) is padding, row -1.

Everything is worked out from the ring (ReplayBuffer layout, see core/ring.py) and the stored
episode-end flags, reading only the rows the windows visit, so the cost of a window does not
grow with the buffer:

- row r + 1 follows row r in the same episode iff row r did not end its episode and row
  r + 1 holds a transition (the row at the write position never does, so a window never runs
  from the newest step into the oldest);
- when row r ended its episode, row r + 1 holds its final observation and the next episode of
  the sub-env starts at row r + 2, provided row r + 1 is not the write position (``"cross"``);
- a stored step starts an episode (``is_first``) iff it is the first row the sub-env ever
  wrote (the ring has not wrapped) or the step two rows before it ended an episode and is still
  stored. On the oldest stored step of a wrapped ring, the row that would tell is overwritten,
  so ``is_first`` is False there even if it was an episode's first step.

:func:`window_rows` is the compiled kernel; :func:`window_rows_spec` says the same per sub-env
with whole-ring numpy arrays and is what the kernel is tested against.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
from numba import njit

from pearll.common.arguments import check_int

BOUNDARIES = ("pad", "cross")


class Windows(NamedTuple):
    """Where the ``(E, B)`` windows of ``T = burn_in + length`` steps read.

    ``rows`` (E, B, T) int64: the row of step t, -1 for padding; ``is_first`` (E, B, T) bool;
    ``burn`` (E, B) int64: real burn-in steps (the last ``burn`` of the burn-in part);
    ``learned`` (E, B) int64: real learned steps (the first ``learned`` from the anchor on).
    """

    rows: np.ndarray
    is_first: np.ndarray
    burn: np.ndarray
    learned: np.ndarray


def check_window_args(length: object, burn_in: object, boundary: object) -> None:
    """Raise TypeError / ValueError unless ``length`` is an int >= 1, ``burn_in`` an int >= 0
    and ``boundary`` one of :data:`BOUNDARIES`."""
    for name, value, low in (("length", length, 1), ("burn_in", burn_in, 0)):
        check_int(value, name, low, f"an int >= {low}")
    if boundary not in BOUNDARIES:
        raise ValueError(f"boundary: expected one of {BOUNDARIES}, got {boundary!r}")


def window_rows(
    valid: np.ndarray,
    dones: np.ndarray,
    truncateds: np.ndarray,
    pos: np.ndarray,
    size: np.ndarray,
    anchors: np.ndarray,
    burn_in: int,
    length: int,
    cross: bool,
) -> Windows:
    """The windows anchored at ``anchors`` (E, B) (rows holding transitions of each sub-env).

    ``valid`` (capacity, E) bool; ``dones`` (capacity, E, 1) float32 and ``truncateds``
    (capacity, E, 1) bool, the stored flags (views are fine: only visited rows are read);
    ``pos``, ``size`` (E,) the ring's cursors. ``cross``: the learned part runs on into the
    sub-env's next episode (else it stops at its episode's end).
    """
    num_envs, batch = anchors.shape
    steps = burn_in + length
    rows = np.full((num_envs, batch, steps), -1, dtype=np.int64)
    is_first = np.zeros((num_envs, batch, steps), dtype=bool)
    burn = np.empty((num_envs, batch), dtype=np.int64)
    learned = np.empty((num_envs, batch), dtype=np.int64)
    _window_rows(valid, dones, truncateds, pos, size, anchors.astype(np.int64), burn_in,
                 length, cross, rows, is_first, burn, learned)  # fmt: skip
    return Windows(rows, is_first, burn, learned)


@njit(cache=True, nogil=True)
def _ended(dones, truncateds, row, env):
    return dones[row, env, 0] != 0 or truncateds[row, env, 0]


@njit(cache=True, nogil=True)
def _starts_episode(valid, dones, truncateds, pos, size, row, env):
    capacity = valid.shape[0]
    if size[env] < capacity and row == (pos[env] - size[env]) % capacity:
        return True
    final_row, last_row = (row - 1) % capacity, (row - 2) % capacity
    return (
        final_row != pos[env] and valid[last_row, env] and _ended(dones, truncateds, last_row, env)
    )


@njit(cache=True, nogil=True)
def _window_rows(valid, dones, truncateds, pos, size, anchors, burn_in, length, cross,
                 rows, is_first, burn, learned):  # fmt: skip
    # Rows step by one with a compare instead of a modulo (the walk is most of the cost); only
    # a window's first real step and the steps a cross window enters an episode at can start
    # an episode, so is_first is worked out there alone.
    capacity = valid.shape[0]
    for env in range(anchors.shape[0]):
        for b in range(anchors.shape[1]):
            row = anchors[env, b]
            rows[env, b, burn_in] = row
            n = 1
            while n < length:
                following = row + 1 if row + 1 < capacity else 0
                entered = False
                if _ended(dones, truncateds, row, env):
                    # The next episode starts after the final observation's row, unless that
                    # row is the write position (defensive: an end costs a row, so the write
                    # position is then one row later).
                    if not cross or following == pos[env]:
                        break
                    following = following + 1 if following + 1 < capacity else 0
                    entered = True
                if not valid[following, env]:
                    break
                row = following
                rows[env, b, burn_in + n] = row
                is_first[env, b, burn_in + n] = entered
                n += 1
            learned[env, b] = n
            row = anchors[env, b]
            k = 0
            while k < burn_in:
                previous = row - 1 if row > 0 else capacity - 1
                # A stored row before a stored row is in the same episode (an end is followed
                # by its final observation's row, never a transition); the flag check is
                # defensive.
                if not valid[previous, env] or _ended(dones, truncateds, previous, env):
                    break
                row = previous
                k += 1
                rows[env, b, burn_in - k] = row
            burn[env, b] = k
            start = burn_in - k
            is_first[env, b, start] = _starts_episode(
                valid, dones, truncateds, pos, size, rows[env, b, start], env
            )


def window_rows_spec(
    valid: np.ndarray,
    dones: np.ndarray,
    truncateds: np.ndarray,
    pos: np.ndarray,
    size: np.ndarray,
    anchors: np.ndarray,
    burn_in: int,
    length: int,
    cross: bool,
) -> Windows:
    """:func:`window_rows` said another way: each sub-env's stored steps listed oldest first
    with their episode numbers, windows cut out of that list (slow; the kernel's test)."""
    capacity = valid.shape[0]
    num_envs, batch = anchors.shape
    steps = burn_in + length
    rows = np.full((num_envs, batch, steps), -1, dtype=np.int64)
    is_first = np.zeros((num_envs, batch, steps), dtype=bool)
    burn = np.zeros((num_envs, batch), dtype=np.int64)
    learned = np.zeros((num_envs, batch), dtype=np.int64)
    for env in range(num_envs):
        in_use = (pos[env] - size[env] + np.arange(size[env])) % capacity
        ended = (dones[in_use, env, 0] != 0) | truncateds[in_use, env, 0]
        stored = valid[in_use, env]
        # Runs of consecutive stored rows (oldest first); a run's end is an episode end when
        # its last row ended and the next row (the final observation) is in use.
        run = np.cumsum(np.r_[True, ~stored[:-1] | ~stored[1:]]) if len(in_use) else in_use
        order = np.flatnonzero(stored)
        step_rows, step_runs = in_use[order], run[order]
        ended_steps = ended[order]
        # A cross window goes from one run to the next only over an episode end: the ended
        # row, its final observation, the next run's first row, all in use.
        joins = np.r_[
            ended_steps[:-1] & (order[1:] == order[:-1] + 2), False
        ] if len(order) else np.zeros(0, bool)  # fmt: skip
        first = np.zeros(len(order), dtype=bool)
        if len(order):
            first[1:] = ended_steps[:-1] & (order[1:] == order[:-1] + 2)
            first[0] = size[env] < capacity and order[0] == 0
        where = {int(r): i for i, r in enumerate(step_rows)}
        for b in range(batch):
            i = where[int(anchors[env, b])]
            n = 1
            while n < length and i + n < len(order):
                j = i + n
                same_run = step_runs[j] == step_runs[j - 1] and not ended_steps[j - 1]
                if not (same_run or (cross and joins[j - 1])):
                    break
                n += 1
            k = 0
            while k < burn_in and i - k - 1 >= 0:
                j = i - k - 1
                if step_runs[j] != step_runs[j + 1] or ended_steps[j]:
                    break
                k += 1
            span = np.arange(i - k, i + n)
            rows[env, b, burn_in - k : burn_in + n] = step_rows[span]
            is_first[env, b, burn_in - k : burn_in + n] = first[span]
            burn[env, b], learned[env, b] = k, n
    return Windows(rows, is_first, burn, learned)
