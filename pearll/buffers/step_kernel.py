"""The compiled part of the add hot path: one env step into packed storage and the ring.

:class:`~pearll.buffers.step_writer.StepWriter` stages the step's fields (numpy does the dtype
casts) into a ``(E, stage_bytes)`` uint8 block laid out like a packed row, and the actions as
float64 into a ``control`` array, then calls :func:`write_step` once. Every argument is a
uint8, int64 or bool array whatever the env's dtypes, so there is one compiled signature
(compiled once, cached on disk). A numba call costs about 50 ns per array argument, so the
constants, the action bounds and the report share the one ``control`` array.

The kernel reproduces ``Ring.plan``/``Ring.commit`` for one step (T = 1) exactly; tests compare
its bytes and bookkeeping with the general path's on random streams.

``control`` (int64, with float64 views where noted) holds, at these indices:
"""

from __future__ import annotations

import numpy as np
from numba import njit

SPARE_ROWS = 0  # 1: ReplayBuffer layout (next observation in the following row, mirror row)
NEXT_STEP = 1  # 1: NEXT_STEP autoreset; the step after an episode end is dropped
SAME_STEP = 2  # 1: SAME_STEP autoreset; an episode end needs info["final_obs"] (declined)
OBS_OFFSET = 3  # where observations sit in a packed row (bytes)
OBS_BYTES = 4  # their size; the staged next observation follows the staged row
DONES_OFFSET = 5  # byte offset of the row's float32 done flag
TRUNCATEDS_OFFSET = 6  # byte offset of the row's bool truncated flag
ACTION_SIZE = 7  # k, the number of values of one action
HEADER = 8
# Then, as float64: the low bounds (k), the high bounds (k), each sub-env's action (E * k);
# then the report, int64: (row, env) of the slots written, E of each, and of the slots passed
# over, 3E of each: see report_start.

ACTION_OUT_OF_RANGE = -1
NEEDS_FINAL_OBS = -2
# The result packs two counts (slots written, slots passed over) into one int: returning a
# tuple would cost a boxing per call.
COUNT_BITS = 32


def control_size(num_envs: int, action_size: int) -> int:
    """The length of ``control`` for ``num_envs`` sub-envs and actions of ``action_size``."""
    return HEADER + (2 + num_envs) * action_size + 8 * num_envs


def report_start(num_envs: int, action_size: int) -> int:
    """Where in ``control`` the report starts: the rows written (E), their envs (E), the rows
    passed over (3E), their envs (3E)."""
    return HEADER + (2 + num_envs) * action_size


@njit(cache=True)
def write_step(packed, stage, control, pos, size, valid, count, prev_ended):
    """Write one staged step of each sub-env; or write nothing and return a negative code.

    Shapes: ``packed (E, rows, row_bytes)`` uint8; ``stage (E, stage_bytes)`` uint8: each
    sub-env's packed row, then (spare rows) its next observation, padded to a multiple of 8;
    ``control`` as described in the module docstring; ``pos``, ``size``, ``count`` ``(E,)``
    int64, ``valid (capacity, E)`` bool and ``prev_ended (E,)`` bool: the Ring, updated in
    place.

    Returns ``written + (passed << COUNT_BITS)``, the slots written and passed over (listed in
    the report), or ACTION_OUT_OF_RANGE (a NaN is out of range) or NEEDS_FINAL_OBS.
    """
    num_envs, row_bytes = packed.shape[0], packed.shape[2]
    capacity = valid.shape[0]
    if not _actions_in_range(control, num_envs):
        return ACTION_OUT_OF_RANGE
    if control[SAME_STEP] != 0:
        for e in range(num_envs):
            if _ended(stage, control, e):
                return NEEDS_FINAL_OBS
    spare = control[SPARE_ROWS] != 0
    # Whole rows move as 8-byte words (rows and staged rows are multiples of 8 bytes long);
    # the next observation too when it is aligned, else byte by byte.
    words, staged_words = packed.view(np.uint64), stage.view(np.uint64)
    row_words = row_bytes // 8
    obs_at, obs_bytes = control[OBS_OFFSET], control[OBS_BYTES]
    obs_in_words = obs_at % 8 == 0 and obs_bytes % 8 == 0
    report = HEADER + (2 + num_envs) * control[ACTION_SIZE]  # report_start
    passed_at = report + 2 * num_envs
    written = passed = 0
    for e in range(num_envs):
        if control[NEXT_STEP] != 0 and prev_ended[e]:
            prev_ended[e] = False  # a reset step: dropped
            continue
        ended = _ended(stage, control, e)
        row = pos[e]
        for w in range(row_words):
            words[e, row, w] = staged_words[e, w]
        control[report + written], control[report + num_envs + written] = row, e
        written += 1
        advance = 1
        if spare:
            following = _wrap(row + 1, capacity)
            if obs_in_words:
                for w in range(obs_bytes // 8):
                    words[e, following, obs_at // 8 + w] = staged_words[e, row_words + w]
            else:
                for b in range(obs_bytes):
                    packed[e, following, obs_at + b] = stage[e, row_bytes + b]
            if row == 0 or following == 0:
                for w in range(row_words):
                    words[e, capacity, w] = words[e, 0, w]  # the mirror row
            advance = 2 if ended else 1
        # Ring.commit: the rows the step overwrote or made pending lose their transitions.
        lost = 0
        for offset in range(advance + 1 if spare else 1):
            passed_row = _wrap(row + offset, capacity)
            if valid[passed_row, e]:
                lost += 1
                valid[passed_row, e] = False
            control[passed_at + passed] = passed_row
            control[passed_at + 3 * num_envs + passed] = e
            passed += 1
        valid[row, e] = True
        count[e] += 1 - lost
        pos[e] = _wrap(row + advance, capacity)
        size[e] = min(size[e] + advance, capacity)
        prev_ended[e] = ended
    return written + (passed << COUNT_BITS)


@njit(cache=True)
def _actions_in_range(control, num_envs):
    floats = control.view(np.float64)
    k = control[ACTION_SIZE]
    low, high, actions = HEADER, HEADER + k, HEADER + 2 * k
    for e in range(num_envs):
        for j in range(k):
            a = floats[actions + e * k + j]
            if not (a >= floats[low + j] and a <= floats[high + j]):
                return False
    return True


@njit(cache=True)
def _ended(stage, control, e):
    """Whether sub-env ``e``'s staged step ended its episode (terminated or truncated)."""
    done_at = control[DONES_OFFSET]
    # The staged done is 0.0 or 1.0 (cast from bool): nonzero iff one of its bytes is.
    done = (stage[e, done_at] | stage[e, done_at + 1] | stage[e, done_at + 2]
            | stage[e, done_at + 3]) != 0  # fmt: skip
    return done or stage[e, control[TRUNCATEDS_OFFSET]] != 0


@njit(cache=True)
def _wrap(row, capacity):
    """``row % capacity`` for ``0 <= row < 2 * capacity``: an integer division costs as much as
    the rest of a sub-env's write."""
    return row if row < capacity else row - capacity
