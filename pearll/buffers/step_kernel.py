"""The compiled part of the add hot path: one env step into packed storage and the ring.

:class:`~pearll.buffers.step_writer.StepWriter` stages the step's fields (numpy does the dtype
casts) into a ``(E, stage_bytes)`` uint8 block laid out like a packed row, then calls
:func:`write_step` once. Every argument is a uint8, int64, float64 or bool array whatever the
env's dtypes, so there is one compiled signature (compiled once, cached on disk), and the call
costs about as much as two small numpy operations instead of the ~20 the same work took in
numpy.

The kernel reproduces ``Ring.plan``/``Ring.commit`` for one step (T = 1) exactly; tests compare
its bytes and bookkeeping with the general path's on random streams.
"""

from __future__ import annotations

import numpy as np
from numba import njit

# Indices into the ``params`` argument (int64): the layout and the mode, fixed per buffer.
SPARE_ROWS = 0  # 1: ReplayBuffer layout (next observation in the following row, mirror row)
NEXT_STEP = 1  # 1: NEXT_STEP autoreset; the step after an episode end is dropped
SAME_STEP = 2  # 1: SAME_STEP autoreset; an episode end needs info["final_obs"] (declined)
OBS_OFFSET = 3  # where observations sit in a packed row (bytes)
OBS_BYTES = 4  # their size; the staged next observation follows the staged row
DONES_OFFSET = 5  # float32 done flag of the row
TRUNCATEDS_OFFSET = 6  # bool truncated flag of the row
CHECK_ACTIONS = 7  # 1: check the staged actions against the bounds
NUM_PARAMS = 8

ACTION_OUT_OF_RANGE = -1
NEEDS_FINAL_OBS = -2
# The result packs two counts (written slots, passed-over slots) into one int: a tuple would
# cost a boxing per call.
COUNT_BITS = 32


@njit(cache=True)
def write_step(packed, stage, actions, pos, size, valid, count, prev_ended, report, params):
    """Write one staged step of each sub-env, or nothing and a negative code.

    Shapes: ``packed (E, rows, row_bytes)`` uint8; ``stage (E, row_bytes [+ obs bytes])``
    uint8: each sub-env's packed row, then (spare rows) its next observation; ``actions
    (E + 2, k)`` float64: the low and high bounds, then each sub-env's action, flattened;
    ``pos``, ``size``, ``count`` ``(E,)`` int64, ``valid (capacity, E)`` bool and
    ``prev_ended (E,)`` bool: the Ring, updated in place; ``report (2, 4E)`` int64 receives
    (row, env) of the slots written (first E columns) and passed over (the rest).

    Returns ``written + (passed << COUNT_BITS)``, or ACTION_OUT_OF_RANGE (a NaN fails too) or
    NEEDS_FINAL_OBS, having changed nothing.
    """
    num_envs, row_bytes = packed.shape[0], packed.shape[2]
    capacity = valid.shape[0]
    spare = params[SPARE_ROWS] != 0
    if params[CHECK_ACTIONS] != 0:
        for e in range(num_envs):
            for j in range(actions.shape[1]):
                a = actions[e + 2, j]
                if not (a >= actions[0, j] and a <= actions[1, j]):
                    return ACTION_OUT_OF_RANGE
    ended = np.empty(num_envs, dtype=np.bool_)
    done_at, trunc_at = params[DONES_OFFSET], params[TRUNCATEDS_OFFSET]
    for e in range(num_envs):
        # The staged done is 0.0 or 1.0 (cast from bool): nonzero iff one of its bytes is.
        done = (stage[e, done_at] | stage[e, done_at + 1] | stage[e, done_at + 2]
                | stage[e, done_at + 3]) != 0  # fmt: skip
        ended[e] = done or stage[e, trunc_at] != 0
        if ended[e] and params[SAME_STEP] != 0:
            return NEEDS_FINAL_OBS
    obs_at, obs_bytes = params[OBS_OFFSET], params[OBS_BYTES]
    written = passed = 0
    for e in range(num_envs):
        if params[NEXT_STEP] != 0 and prev_ended[e]:
            prev_ended[e] = False  # a reset step: dropped
            continue
        row = pos[e]
        packed[e, row, :] = stage[e, :row_bytes]
        report[0, written], report[1, written] = row, e
        written += 1
        advance = 1
        if spare:
            following = row + 1 if row + 1 < capacity else 0
            next_obs = stage[e, row_bytes : row_bytes + obs_bytes]
            packed[e, following, obs_at : obs_at + obs_bytes] = next_obs
            if row == 0 or following == 0:
                packed[e, capacity, :] = packed[e, 0, :]  # the mirror row
            advance = 2 if ended[e] else 1
        # Ring.commit: the rows the step overwrote or made pending lose their transitions.
        lost = 0
        for offset in range(advance + 1 if spare else 1):
            passed_row = (row + offset) % capacity
            if valid[passed_row, e]:
                lost += 1
                valid[passed_row, e] = False
            report[0, num_envs + passed], report[1, num_envs + passed] = passed_row, e
            passed += 1
        valid[row, e] = True
        count[e] += 1 - lost
        pos[e] = (row + advance) % capacity
        size[e] = min(size[e] + advance, capacity)
        prev_ended[e] = ended[e]
    return written + (passed << COUNT_BITS)
