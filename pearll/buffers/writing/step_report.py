"""What a step writer's add changed, told to the write observers (PER's tree, HER's index).

The kernel lists, in ``control``'s report (step_kernel.py), the slots it wrote and the slots
it passed over (the frame stacks it broke among them); this turns them into the
:class:`~pearll.buffers.writing.writer.Written` event the general path's writer sends.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pearll.buffers.writing import step_kernel as kernel
from pearll.buffers.writing.writer import WriteObserver, Written

_COUNT_MASK = (1 << kernel.COUNT_BITS) - 1


def report_written(
    observers: Sequence[WriteObserver],
    control: np.ndarray,
    report_at: int,
    result: int,
    ended: np.ndarray,
) -> None:
    """Tell ``observers`` what the kernel's ``result`` (``written + (passed << COUNT_BITS)``)
    lists in the report at ``control[report_at:]``; ``ended`` says whether each sub-env's
    step ended its episode (a scalar flag is broadcast). The event's arrays are views of the
    report, valid during the call."""
    written, passed = result & _COUNT_MASK, result >> kernel.COUNT_BITS
    e = int(control[kernel.NUM_ENVS])
    room, report = int(control[kernel.PASSED_PER_ENV]) * e, control[report_at:]
    passed_rows = report[2 * e : 2 * e + passed]
    passed_envs = report[2 * e + room : 2 * e + room + passed]
    if ended.shape != (e,):
        ended = np.broadcast_to(ended, (e,))
    event = Written(report[:written], report[e : e + written], passed_rows, passed_envs,
                    ended=ended)  # fmt: skip
    for observer in observers:
        observer(event)
