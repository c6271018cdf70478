"""The first of the two compiled calls of a step whose frames the caller stores.

A compressed frame store keeps each frame as a Python ``bytes`` object, which compiled code
cannot make; so the step writer compresses the step's frames in Python (the codec is one C
call per frame) and puts them into the store itself, between two compiled calls:

1. :func:`invalidate_step` (here): every check of ``write_step``, then what the step will
   overwrite stops being a transition: the slots it passes over and the frame stacks that
   reach back to the row it stores the next observation's frame in (``Ring.commit`` and
   ``FrameStore.broken_rows`` for one step, done first, as the general path's ``Writer``
   invalidates before it writes). It lists the ``(row, env)`` of each step it will write.
2. the frames put into the store, in Python (writing/compressed_step.py);
3. ``write_step`` with ``control[FRAMES_PUT]`` set: the packed rows, the stack depths, and the
   ring committed, in one call, without copying frames or invalidating anything again.

So an interrupt between the calls leaves what Writer.add's would: some of the oldest
transitions gone, none half-written. The checks decide before anything changes, so a step
declined here (a negative code) has changed nothing.
"""

from __future__ import annotations

import numpy as np
from numba import carray, njit

from pearll.buffers.writing import step_kernel as kernel
from pearll.buffers.writing.step_kernel import pointer, refused, step_ended, wrap


@njit(cache=True)
def invalidate_step(control):
    """Check the staged step; then invalidate what it will overwrite, and list what it writes.

    Returns ``written + (passed << COUNT_BITS)``: the report lists the ``written`` slots the
    step will write (always, observers or not: the caller puts their frames) and the
    ``passed`` slots it invalidated or passes over (the broken stacks among them); or a
    negative code of :func:`~pearll.buffers.writing.step_kernel.write_step`, nothing changed.
    Reads the ring and the depths in packed storage; changes only ``valid`` and ``count``.
    """
    num_envs, capacity = control[kernel.NUM_ENVS], control[kernel.CAPACITY]
    rows, row_bytes = control[kernel.PACKED_ROWS], control[kernel.ROW_BYTES]
    packed = carray(pointer(control[kernel.PACKED_AT]), (num_envs, rows, row_bytes), np.uint8)
    stage_bytes = control[kernel.STAGE_BYTES]
    stage = carray(pointer(control[kernel.STAGE_AT]), (num_envs, stage_bytes), np.uint8)
    pos = carray(pointer(control[kernel.POS_AT]), num_envs, np.int64)
    valid = carray(pointer(control[kernel.VALID_AT]), (capacity, num_envs), np.bool_)
    count = carray(pointer(control[kernel.COUNT_AT]), num_envs, np.int64)
    prev_ended = carray(pointer(control[kernel.PREV_ENDED_AT]), num_envs, np.bool_)
    declined = refused(control, stage, num_envs)
    if declined:
        return declined
    done_at, trunc_at = control[kernel.DONES_OFFSET], control[kernel.TRUNCATEDS_OFFSET]
    next_step = control[kernel.NEXT_STEP] != 0
    depth_at, stack = control[kernel.OBS_OFFSET], control[kernel.STACK_SIZE]
    report = kernel.HEADER + (2 + num_envs) * control[kernel.ACTION_SIZE]  # report_start
    passed_at = report + 2 * num_envs
    passed_room = control[kernel.PASSED_PER_ENV] * num_envs
    written = passed = 0
    for e in range(num_envs):
        if next_step and prev_ended[e]:
            continue  # a reset step: write_step drops it
        row = pos[e]
        control[report + written], control[report + num_envs + written] = row, e
        written += 1
        advance = 2 if step_ended(stage, e, done_at, trunc_at) else 1
        # The rows the step overwrites or makes pending (spare rows: frames come with them).
        for offset in range(advance + 1):
            passed_row = wrap(row + offset, capacity)
            if valid[passed_row, e]:
                valid[passed_row, e] = False
                count[e] -= 1
            control[passed_at + passed] = passed_row
            control[passed_at + passed_room + passed] = e
            passed += 1
        # The stacks that reach back to the row the next observation's frame goes to. Their
        # depths are not among those the step writes (the row and the next one).
        following = wrap(row + 1, capacity)
        for offset in range(1, stack):
            broken = wrap(following + offset, capacity)
            if valid[broken, e] and packed[e, broken, depth_at] >= offset:
                valid[broken, e] = False
                count[e] -= 1
                control[passed_at + passed] = broken
                control[passed_at + passed_room + passed] = e
                passed += 1
    return written + (passed << kernel.COUNT_BITS)


def compiled_invalidate_step():
    """:func:`invalidate_step` compiled for the kernel's one signature: its entry point."""
    return invalidate_step.compile(kernel.SIGNATURE)
