"""The checks an added frame-stack step gets (``frame_stack=k``; see :mod:`pearll.sb3.layout`)."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np


def check_stacks(
    layout: Any, obs: np.ndarray, next_obs: np.ndarray, starting: np.ndarray, warned: bool
) -> bool:
    """Raise if a next stack is not its stack shifted by a frame (a wrong channels_order);
    warn once if an episode starts with a stack that is not zero-padded. Returns whether the
    warning has been given (``warned`` or now).

    ``obs``, ``next_obs``: ``(n_envs, k, *frame)`` as stored; ``starting``: ``(n_envs,)`` bool,
    the sub-envs whose step starts an episode.
    """
    # Byte compares: no temporaries the size of a stack.
    unshifted = [e for e in range(len(obs)) if next_obs[e, :-1].tobytes() != obs[e, 1:].tobytes()]
    if unshifted:
        raise ValueError(
            f"frame_stack={layout.frame_stack}, channels_order={layout.channels_order!r}: "
            f"the next observations of sub-envs {unshifted} are not their observations "
            "shifted by one frame along that axis; give the channels_order of the "
            "observations the buffer receives (a CNN policy's VecTransposeImage makes "
            "them 'first')"
        )
    if warned or not np.count_nonzero(starting):
        return warned
    mid_stack = [e for e in np.flatnonzero(starting) if np.count_nonzero(obs[e, :-1])]
    if not mid_stack:
        return False
    warnings.warn(
        f"sub-envs {mid_stack} start an episode with a stack whose older frames are not "
        "zero (a restart mid-episode, e.g. a buffer loaded into a later run): the "
        "buffer holds no frames from before its first step, so the first stacks of "
        "that episode come back zero-padded",
        RuntimeWarning,
        stacklevel=4,
    )
    return True
