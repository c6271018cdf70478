"""Staging and writing one vector-env step in one compiled call: the step writer's usual case.

Staging in Python (stage.py) costs one numpy assignment per field, about a tenth of a
microsecond each, which is more than the compiled write that follows. When each array of a
vector-env step already has its field's dtype, staging is a plain copy (no cast to decide), so
:func:`stage_and_write_step` (array observations) and :func:`stage_frames_and_write_step`
(frame stacks: the two newest frames instead of the observations) copy each sub-env's fields
into the staging block, in the layout the Python staging uses, and then run
:func:`~pearll.buffers.writing.step_kernel.write_step` on it, in the same call.

The caller (StepWriter._try_vector) checks classes, shapes and dtypes as for the Python
staging, and takes this path only when the observations and actions have exactly their
fields' dtypes, the rewards are float32 or float64 (cast to float32 as numpy casts them:
round to nearest), the done and truncated flags are bool arrays (``truncated=False`` is
given as zeros), and there are no extra fields. Specification: the Python staging
(StepWriter._write); tests compare the staged bytes and the buffer's state after each step.

The step writer calls the compiled function's entry point for the one signature its fields
allow (:func:`entry_point`; arrays of any strides), which skips numba's type dispatch, most
of the cost of a call with six arrays. It compiles at the first add (or loads from numba's
disk cache), once for float32 and once for float64 rewards.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import carray, from_dtype, njit, types
from numba.extending import overload

from pearll.buffers.writing import step_kernel as kernel
from pearll.buffers.writing.step_kernel import pointer, write_step


@njit(cache=True)
def stage_and_write_step(control, obs, next_obs, action, reward, done, trunc):
    """Stage ``obs``, ``next_obs`` ``(E, ...)`` (the observation field's dtype), ``action``
    ``(E,)`` or ``(E, k)`` (the action field's dtype), ``reward`` ``(E,)`` float32/float64,
    ``done`` and ``trunc`` ``(E,)`` bool, then :func:`write_step`: its result."""
    at, stage_bytes = control[kernel.STAGE_AT], control[kernel.STAGE_BYTES]
    obs_at, next_at = control[kernel.OBS_OFFSET], control[kernel.NEXT_STAGED_AT]
    for e in range(control[kernel.NUM_ENVS]):
        row = at + e * stage_bytes
        _copy(carray(pointer(row + obs_at), obs.shape[1:], obs.dtype), obs[e])
        _copy(carray(pointer(row + next_at), next_obs.shape[1:], next_obs.dtype), next_obs[e])
        _stage_rest(control, row, e, action, reward, done, trunc)
    return write_step(control)


@njit(cache=True)
def stage_frames_and_write_step(control, obs, next_obs, action, reward, done, trunc):
    """As :func:`stage_and_write_step` for frame stacks ``(E, k, *frame)`` of the frame
    store's dtype: the newest frame of each stack is staged, not the stacks."""
    at, stage_bytes = control[kernel.STAGE_AT], control[kernel.STAGE_BYTES]
    frames_at, frame_bytes = control[kernel.STAGED_FRAMES_AT], control[kernel.FRAME_BYTES]
    for e in range(control[kernel.NUM_ENVS]):
        row = at + e * stage_bytes
        _copy(carray(pointer(row + frames_at), obs.shape[2:], obs.dtype), obs[e, -1])
        following = carray(pointer(row + frames_at + frame_bytes), obs.shape[2:], obs.dtype)
        _copy(following, next_obs[e, -1])
        _stage_rest(control, row, e, action, reward, done, trunc)
    return write_step(control)


@njit(cache=True)
def _stage_rest(control, row, e, action, reward, done, trunc):
    """Sub-env ``e``'s action (into its field and, as float64, into ``control`` for the range
    check), reward (float32), done flag (float32 0 or 1) and truncated flag (bool) into the
    staged row at ``row``."""
    k = control[kernel.ACTION_SIZE]
    staged_action = carray(pointer(row + control[kernel.ACTIONS_OFFSET]), k, action.dtype)
    checked = control.view(np.float64)
    start = kernel.HEADER + 2 * k + e * k  # where make_control puts each sub-env's action
    for j in range(k):
        value = _action_value(action, e, j)
        staged_action[j] = value
        checked[start + j] = value
    carray(pointer(row + control[kernel.REWARDS_OFFSET]), 1, np.float32)[0] = reward[e]
    carray(pointer(row + control[kernel.DONES_OFFSET]), 1, np.float32)[0] = 1.0 if done[e] else 0.0
    carray(pointer(row + control[kernel.TRUNCATEDS_OFFSET]), 1, np.bool_)[0] = trunc[e]


@njit(cache=True)
def _copy(target, item):
    """``target[...] = item`` for a C-contiguous ``target`` and an ``item`` of its shape (one
    sub-env's observation or newest frame, a view of any strides): as one run of bytes where
    ``item`` is C-contiguous too (copied in vector registers), else element by element."""
    if _contiguous(item):
        nbytes = target.size * item.itemsize
        copied = carray(pointer(target.ctypes.data), nbytes, np.uint8)
        given = carray(pointer(item.ctypes.data), nbytes, np.uint8)
        for b in range(nbytes):
            copied[b] = given[b]
    else:
        _assign(target, item)


@njit(cache=True)
def _contiguous(array):
    """Whether ``array`` is C-contiguous (axes of length 1 aside)."""
    expected = array.itemsize
    for axis in range(array.ndim - 1, -1, -1):
        if array.shape[axis] > 1 and array.strides[axis] != expected:
            return False
        expected *= array.shape[axis]
    return True


def _assign(target, item):
    """``target[...] = item``, element by element (compiled: the overload below)."""
    target[...] = item


@overload(_assign)
def _assign_compiled(target, item):
    # Explicit loops for one and two axes (flat observations, grayscale frames): numba's
    # generic array assignment walks a strided view several times slower.
    if target.ndim == 1:

        def assign_flat(target, item):
            for i in range(target.shape[0]):
                target[i] = item[i]

        return assign_flat
    if target.ndim == 2:

        def assign_rows(target, item):
            for i in range(target.shape[0]):
                for j in range(target.shape[1]):
                    target[i, j] = item[i, j]

        return assign_rows

    def assign(target, item):
        target[...] = item

    return assign


def _action_value(action, e, j):
    """Value ``j`` of sub-env ``e``'s action: ``action[e]`` (Discrete) or ``action[e, j]``."""
    return action[e] if action.ndim == 1 else action[e, j]


@overload(_action_value)
def _action_value_compiled(action, e, j):
    if action.ndim == 1:
        return lambda action, e, j: action[e]
    return lambda action, e, j: action[e, j]


def compiled_staging(
    vector: bool, plain_fields: bool, obs_slot: Any, frames: Any, action_dtype: np.dtype
) -> Any:
    """The compiled staging for a step writer's parts (a numba dispatcher), or None where it
    does not apply: single envs, Dict observations, extra fields, compressed frames
    (``plain_fields`` False), scalar observations (Discrete spaces) and dtypes numba has no
    type for (float16) take the Python one."""
    if not (vector and plain_fields):
        return None
    obs_dtype, shape = (obs_slot.dtype, obs_slot.shape) if frames is None else (
        frames.dtype, frames.frame_shape)  # fmt: skip
    if len(shape) < 1 or not (_numba_has(obs_dtype) and _numba_has(action_dtype)):
        return None
    return stage_and_write_step if frames is None else stage_frames_and_write_step


def _numba_has(dtype: np.dtype) -> bool:
    """Whether numba compiles arrays of ``dtype`` (bool, integers, float32, float64; not
    float16, which it types but cannot compile)."""
    dtype = np.dtype(dtype)
    return dtype.kind in "biu" or dtype in (np.dtype(np.float32), np.dtype(np.float64))


def entry_point(staging: Any, obs: tuple[np.dtype, int], action: tuple[np.dtype, int],
                reward: np.dtype) -> Any:  # fmt: skip
    """The entry point of ``staging`` (one of the two functions above) compiled for arrays of
    any strides: observations of dtype and rank ``obs`` (both), actions ``action``, rewards
    ``reward`` (rank 1), bool done and truncated flags. It raises TypeError, having run
    nothing, if an argument is not an array of its type."""

    def array(dtype: np.dtype, ndim: int) -> Any:
        return types.Array(from_dtype(np.dtype(dtype)), ndim, "A")

    signature = (types.Array(types.int64, 1, "C"), array(*obs), array(*obs), array(*action),
                 array(reward, 1), array(np.bool_, 1), array(np.bool_, 1))  # fmt: skip
    staging.compile(signature)
    return staging.overloads[signature].entry_point
