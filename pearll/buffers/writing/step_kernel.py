"""The compiled part of the add hot path: one env step into packed storage and the ring.

:class:`~pearll.buffers.writing.step_writer.StepWriter` stages the step's fields into a
``(E, stage_bytes)`` uint8 block laid out like a packed row (numpy does the dtype casts) and
the actions, as float64, into ``control``; then it calls :func:`write_step` once. The kernel
reproduces ``Ring.plan``/``Ring.commit`` for one step (T = 1) exactly; tests compare its bytes
and bookkeeping with the general path's on random streams.

One argument, one signature. A numba call costs about 40 ns per array argument on top of
about 70 ns, and the ten arrays involved would make it cost as much as the work. So the kernel
takes a single int64 array, ``control``, holding the layout, the addresses of the arrays
(packed storage, staging block, the Ring's five arrays), the action bounds, the staged
actions and a report; it rebuilds array views from the addresses (``numba.carray``). The
signature is the same whatever the env's dtypes: one compilation, cached on disk.

Safety rests on the caller: the addresses must be those of live, C-contiguous, writable arrays
of the shapes given in ``control`` (the writer holds references to all of them and checks the
Ring's arrays again whenever the Ring replaces one).

``control`` holds, at these indices:
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit, types
from numba.core import cgutils
from numba.extending import intrinsic

SPARE_ROWS = 0  # 1: ReplayBuffer layout (next observation in the following row)
NEXT_STEP = 1  # 1: NEXT_STEP autoreset; the step after an episode end is dropped
SAME_STEP = 2  # 1: SAME_STEP autoreset; an episode end needs info["final_obs"] (declined)
REPORT = 3  # 1: fill the report (the buffer has write observers)
NUM_ENVS = 4  # E
CAPACITY = 5  # rows of each sub-env's ring
PACKED_ROWS = 6  # rows of the packed array: the capacity, plus the mirror row if spare rows
ROW_BYTES = 7  # bytes of a packed row (a multiple of 8)
STAGE_BYTES = 8  # bytes of a staged row: a packed row, then (spare rows) the next observation
OBS_OFFSET = 9  # where observations sit in a packed row (bytes)
OBS_BYTES = 10  # their size
DONES_OFFSET = 11  # where the float32 done flag sits in a packed row
TRUNCATEDS_OFFSET = 12  # where the bool truncated flag sits
ACTION_SIZE = 13  # k, the number of values of one action
PACKED_AT = 14  # addresses: packed storage (E, PACKED_ROWS, ROW_BYTES) uint8
STAGE_AT = 15  # the staging block (E, STAGE_BYTES) uint8
POS_AT = 16  # Ring.pos (E,) int64
SIZE_AT = 17  # Ring.size (E,) int64
VALID_AT = 18  # Ring.valid (CAPACITY, E) bool
COUNT_AT = 19  # Ring.count (E,) int64
PREV_ENDED_AT = 20  # Ring.prev_ended (E,) bool
MIRROR = 21  # 1: the packed array has the mirror row (row CAPACITY, a copy of row 0)
# Frame stacks: a packed row holds its stack's depth (one byte at OBS_OFFSET) instead of the
# observation; the step's newest frame and its next observation's go to the frame store.
FRAMES = 22  # 1: frame stacks
FRAMES_AT = 23  # the frame store's frames (E, CAPACITY, FRAME_BYTES) uint8
FRAME_BYTES = 24  # bytes of one frame
EPISODE_STEP_AT = 25  # FrameStore.episode_step (E,) int64: kept steps since episode start
STACK_SIZE = 26  # frames per stack
STAGED_FRAMES_AT = 27  # where a staged row holds the two frames (observation's, next's)
PASSED_PER_ENV = 28  # report slots per sub-env for rows passed over (and stacks broken)
REWARDS_OFFSET = 29  # where the float32 reward sits in a packed row
# 1: the caller stores the frames (compressed frame stores): it ran invalidate_step
# (step_invalidate.py) first, so this call neither copies frames nor invalidates anything.
FRAMES_PUT = 30
# Where a staged row holds the actions and (spare rows) the next observation: for the
# compiled staging (stage_kernel.py).
ACTIONS_OFFSET = 31
NEXT_STAGED_AT = 32
HEADER = 33
# Then, as float64: the low bounds (k), the high bounds (k), each sub-env's action (E * k);
# then the report, int64: the rows written (E), their envs (E), the rows passed over
# (PASSED_PER_ENV * E), their envs (as many); see report_start.

ACTION_OUT_OF_RANGE = -1
NEEDS_FINAL_OBS = -2
NON_FINITE_REWARD = -3  # NaN, infinite, or too large for float32 (staged as infinite)
# The result packs two counts (slots written, slots passed over) into one int: returning a
# tuple would cost a boxing per call.
COUNT_BITS = 32
SIGNATURE = (types.Array(types.int64, 1, "C"),)


def control_size(num_envs: int, action_size: int, passed_per_env: int) -> int:
    """The length of ``control`` for ``num_envs`` sub-envs, actions of ``action_size`` and
    ``passed_per_env`` report slots per sub-env for the rows a step passes over."""
    return report_start(num_envs, action_size) + (2 + 2 * passed_per_env) * num_envs


def passed_per_env(stack_size: int) -> int:
    """Rows one step of a sub-env can pass over: its row, the next, a pending one after an
    episode end, and with frame stacks of ``stack_size`` (0: none) the stacks it breaks."""
    return 3 + max(stack_size - 1, 0)


def report_start(num_envs: int, action_size: int) -> int:
    """Where the report starts in ``control``."""
    return HEADER + (2 + num_envs) * action_size


def compiled_write_step():
    """:func:`write_step` compiled for SIGNATURE (or loaded from the disk cache): its entry point.

    Calling the entry point skips the dispatcher's type lookup, half the cost of a call with
    one argument; it still checks that the argument is a 1-d int64 array.
    """
    return write_step.compile(SIGNATURE)


@intrinsic
def pointer(typingctx, address):
    """The int64 ``address`` as a pointer, for ``carray``."""

    def codegen(context, builder, signature, args):
        return builder.inttoptr(args[0], cgutils.voidptr_t)

    return types.voidptr(types.int64), codegen


@njit(cache=True)
def write_step(control):
    """Write one staged step of each sub-env; or write nothing and return a negative code.

    Returns ``written + (passed << COUNT_BITS)``, the numbers of slots written and passed over
    (listed in the report), or ACTION_OUT_OF_RANGE (a NaN is out of range), NEEDS_FINAL_OBS
    or NON_FINITE_REWARD. With FRAMES_PUT, what the step passes over was invalidated and
    reported by invalidate_step already: ``passed`` is 0 here.
    """
    num_envs, capacity = control[NUM_ENVS], control[CAPACITY]
    rows, row_bytes, stage_bytes = control[PACKED_ROWS], control[ROW_BYTES], control[STAGE_BYTES]
    # Rows move as 8-byte words; bytes are for the flags and an unaligned next observation.
    packed = carray(pointer(control[PACKED_AT]), (num_envs, rows, row_bytes), np.uint8)
    packed_words = carray(pointer(control[PACKED_AT]), (num_envs, rows, row_bytes // 8), np.uint64)
    stage = carray(pointer(control[STAGE_AT]), (num_envs, stage_bytes), np.uint8)
    stage_words = carray(pointer(control[STAGE_AT]), (num_envs, stage_bytes // 8), np.uint64)
    pos = carray(pointer(control[POS_AT]), num_envs, np.int64)
    size = carray(pointer(control[SIZE_AT]), num_envs, np.int64)
    valid = carray(pointer(control[VALID_AT]), (capacity, num_envs), np.bool_)
    count = carray(pointer(control[COUNT_AT]), num_envs, np.int64)
    prev_ended = carray(pointer(control[PREV_ENDED_AT]), num_envs, np.bool_)
    declined = refused(control, stage, num_envs)
    if declined:
        return declined
    done_at, trunc_at = control[DONES_OFFSET], control[TRUNCATEDS_OFFSET]
    # Read every constant once: the report's stores into control would otherwise force the
    # compiler to reload them for each sub-env.
    spare, next_step = control[SPARE_ROWS] != 0, control[NEXT_STEP] != 0
    mirror = control[MIRROR] != 0
    reports = control[REPORT] != 0
    row_words = row_bytes // 8
    obs_at, obs_bytes = control[OBS_OFFSET], control[OBS_BYTES]
    obs_in_words = obs_at % 8 == 0 and obs_bytes % 8 == 0
    obs_word_at, obs_words = obs_at // 8, obs_bytes // 8
    report = HEADER + (2 + num_envs) * control[ACTION_SIZE]  # report_start
    passed_at = report + 2 * num_envs
    passed_room = control[PASSED_PER_ENV] * num_envs
    frames_on = control[FRAMES] != 0
    frames_put = control[FRAMES_PUT] != 0
    if frames_on:
        frame_bytes, stack = control[FRAME_BYTES], control[STACK_SIZE]
        frames = carray(pointer(control[FRAMES_AT]), (num_envs, capacity, frame_bytes), np.uint8)
        episode_step = carray(pointer(control[EPISODE_STEP_AT]), num_envs, np.int64)
        staged_frames = control[STAGED_FRAMES_AT]
        # Whole 8-byte words where the layout allows (84x84 frames: 882 words), else bytes.
        frame_words = frame_bytes // 8 if frame_bytes % 8 == 0 and staged_frames % 8 == 0 else 0
        frames_as_words = carray(
            pointer(control[FRAMES_AT]), (num_envs, capacity, max(frame_words, 1)), np.uint64
        )
        staged_word = staged_frames // 8
    written = passed = 0
    for e in range(num_envs):
        if next_step and prev_ended[e]:
            prev_ended[e] = False  # a reset step: dropped
            continue
        ended = step_ended(stage, e, done_at, trunc_at)
        row = pos[e]
        for w in range(row_words):
            packed_words[e, row, w] = stage_words[e, w]
        if reports:
            control[report + written], control[report + num_envs + written] = row, e
        written += 1
        advance = 1
        if frames_on:
            # The stack depths (FrameStore.depths for one step), then the two frames.
            following = wrap(row + 1, capacity)
            depth = episode_step[e]
            packed[e, row, obs_at] = min(depth, stack - 1)
            packed[e, following, obs_at] = min(depth + 1, stack - 1)
            episode_step[e] = 0 if ended else depth + 1
            if frames_put:
                pass  # stored by the caller
            elif frame_words:
                for w in range(frame_words):
                    frames_as_words[e, row, w] = stage_words[e, staged_word + w]
                    frames_as_words[e, following, w] = stage_words[e, staged_word + frame_words + w]
            else:
                for b in range(frame_bytes):
                    frames[e, row, b] = stage[e, staged_frames + b]
                    frames[e, following, b] = stage[e, staged_frames + frame_bytes + b]
            advance = 2 if ended else 1
        elif spare:
            following = wrap(row + 1, capacity)
            if obs_in_words:
                for w in range(obs_words):
                    packed_words[e, following, obs_word_at + w] = stage_words[e, row_words + w]
            else:
                for b in range(obs_bytes):
                    packed[e, following, obs_at + b] = stage[e, row_bytes + b]
            if mirror and (row == 0 or following == 0):
                for w in range(row_words):
                    packed_words[e, capacity, w] = packed_words[e, 0, w]  # the mirror row
            advance = 2 if ended else 1
        # Ring.commit: the rows the step overwrote or made pending lose their transitions.
        lost = 0
        for offset in range(0 if frames_put else advance + 1 if spare else 1):
            passed_row = wrap(row + offset, capacity)
            if valid[passed_row, e]:
                lost += 1
                valid[passed_row, e] = False
            if reports:
                control[passed_at + passed] = passed_row
                control[passed_at + passed_room + passed] = e
            passed += 1
        valid[row, e] = True
        count[e] += 1 - lost
        pos[e] = wrap(row + advance, capacity)
        size[e] = min(size[e] + advance, capacity)
        prev_ended[e] = ended
        if frames_on and not frames_put:
            # FrameStore.broken_rows: the stacks that reached back to the overwritten row
            # after the newest one written (the next observation's) stop being transitions.
            for offset in range(1, stack):
                broken = wrap(following + offset, capacity)
                if valid[broken, e] and packed[e, broken, obs_at] >= offset:
                    valid[broken, e] = False
                    count[e] -= 1
                    if reports:
                        control[passed_at + passed] = broken
                        control[passed_at + passed_room + passed] = e
                    passed += 1
    return written + (passed << COUNT_BITS)


@njit(cache=True)
def refused(control, stage, num_envs):
    """Why the staged step cannot be written (a negative code), or 0: an action out of range,
    a reward not finite, or (SAME_STEP) an episode end, whose final observation is staged anew."""
    if not _actions_in_range(control, num_envs):
        return ACTION_OUT_OF_RANGE
    rewards_at = control[REWARDS_OFFSET]
    for e in range(num_envs):
        # A little-endian float32 is NaN or infinite iff its 8 exponent bits are all set.
        if (stage[e, rewards_at + 3] & 0x7F) == 0x7F and (stage[e, rewards_at + 2] & 0x80) != 0:
            return NON_FINITE_REWARD
    if control[SAME_STEP] != 0:
        done_at, trunc_at = control[DONES_OFFSET], control[TRUNCATEDS_OFFSET]
        for e in range(num_envs):
            if step_ended(stage, e, done_at, trunc_at):
                return NEEDS_FINAL_OBS
    return 0


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
def step_ended(stage, e, done_at, trunc_at):
    """Whether sub-env ``e``'s staged step ended its episode (terminated or truncated)."""
    # The staged done is 0.0 or 1.0 (cast from bool): nonzero iff one of its bytes is.
    done = stage[e, done_at] | stage[e, done_at + 1] | stage[e, done_at + 2] | stage[e, done_at + 3]
    return (done | stage[e, trunc_at]) != 0


@njit(cache=True)
def wrap(row, capacity):
    """``row % capacity`` for ``0 <= row < 2 * capacity``, without an integer division."""
    return row if row < capacity else row - capacity
