"""SAME_STEP episode ends of array observations on the step writer's path.

A SAME_STEP vector env returns the first observation of the next episode as ``next_obs`` of
a step that ended one, and the true final observation in ``info["final_obs"]`` (flagged by
``info["_final_obs"]``). The kernel declines such a step (NEEDS_FINAL_OBS, nothing written);
for array observations the writer stages each ended sub-env's final observation over its
staged next observation and runs the kernel again. (Dict and frame-stacked observations are
staged anew instead: observation_leaves.with_final_observations.)
"""

from __future__ import annotations

import numpy as np

ndarray = np.ndarray


def stage_final_rows(
    staged_next: np.ndarray, row_shape: tuple, dtypes: frozenset, lead: tuple, done, trunc, info
) -> bool:
    """Stage the final observations from ``info`` into ``staged_next`` ``(E, ...)`` for the
    sub-envs whose step ended; False (staging maybe half done: the general path takes the
    step and raises its detailed error) if ``info`` is unusual or lacks one."""
    if info.__class__ is not dict:
        return False
    mask, final = info.get("_final_obs"), info.get("final_obs")
    if not (mask.__class__ is ndarray and mask.dtype == np.bool_
            and mask.shape == lead and final is not None):  # fmt: skip
        return False
    # Python loops over E flags: cheaper than numpy's reductions for a few sub-envs.
    ended = np.logical_or(done, trunc).tolist()
    try:
        for i, has_final in enumerate(mask.tolist()):
            if not has_final:
                if ended[i]:
                    return False  # the general path's error
                continue
            row = final[i]
            if not (row.__class__ is ndarray and row.shape == row_shape
                    and row.dtype in dtypes):  # fmt: skip
                return False
            staged_next[i] = row
    except (TypeError, IndexError, KeyError, ValueError):  # malformed: the general path
        return False
    return True
