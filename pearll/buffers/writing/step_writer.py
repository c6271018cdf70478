"""The hot path: one env step (of a single env, or of every sub-env of a vector env).

``RingBuffer.add_trajectory`` is called once per env step, so its cost matters more than any
other. The general path (validate into ``(T, E, ...)`` arrays, plan rows, scatter, commit) costs
tens of microseconds per step. :class:`StepWriter` does the same for every step it can check
by attribute compares (array or Dict observations, frame stacks, extra fields declared flat,
SAME_STEP final observations) in three stages:

1. Checks in Python, by attribute compares only (step_checks.py): types, shapes, and dtypes
   whose every value the field holds exactly (spaces.always_exact; others, whose values need
   checking, go to the general path).
2. Staging: each field is assigned into a ``(E, stage_bytes)`` uint8 block laid out like a
   packed row (the same numpy assignments, so the same casts, as the general path's), and the
   action also, as float64, into the kernel's ``control`` array for the range check. A
   vector-env step whose arrays all have their fields' own dtypes (bool done and truncated
   flags, no extra fields: the usual step) is staged by compiled code instead, in the same call
   as stage 3 (stage_kernel.py, compiled_step.py): staging is a copy there, with no cast to
   decide, and one call costs less than the assignments.
3. One compiled call (:func:`~pearll.buffers.writing.step_kernel.write_step`): checks every action
   against the space's bounds, then copies each sub-env's staged row into its ring, and updates
   the ring's bookkeeping as ``Ring.plan``/``Ring.commit`` do.

With frame stacks (Atari) the packed row holds the stack's depth instead of the observation:
the writer stages the step's newest frame and its next observation's, and the same compiled
call works out the depths, stores both frames and drops the stacks the write broke, as the
general path does with FrameStore's code. A compressed frame store's frames are Python bytes
objects: the step is written in two compiled calls with the frames compressed and put in
between (step_invalidate.py, compressed_step.py), and only one frame is compressed in the
common case. A SAME_STEP step that ends an episode is staged again with the final
observations from ``info`` put in place (final_rows.py, observation_leaves.py).

Anything the writer is unsure of (a list, a scalar observation, an action out of range, a
final observation missing, a Python int too large for its field) is handed back, with nothing
written, to the general path, which handles it or raises its detailed error. Every check of the
general path stays on: the hot path only skips the work, never a check. Tests compare the two
paths byte for byte on random streams.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from pearll.buffers.writing import step_kernel as kernel
from pearll.buffers.writing.compiled_step import CompiledStaging
from pearll.buffers.writing.compressed_step import CompressedStepFrames
from pearll.buffers.writing.final_steps import FinalStepWrites
from pearll.buffers.writing.observation_leaves import ObservationLeaves
from pearll.buffers.writing.stage import (
    StageLayout,
    action_dtypes,
    castable_dtypes,
    env_view,
    exact_bounds,
    given_action_shape,
    make_control,
    ring_arrays,
    shifted,
    step_view,
)
from pearll.buffers.writing.stage_kernel import compiled_staging
from pearll.buffers.writing.step_checks import StepChecks
from pearll.buffers.writing.step_invalidate import compiled_invalidate_step
from pearll.buffers.writing.step_report import report_written
from pearll.buffers.writing.writer import Writer

ndarray = np.ndarray
_COUNT_MASK = (1 << kernel.COUNT_BITS) - 1
NEEDS_FINAL_OBS = kernel.NEEDS_FINAL_OBS


class StepWriter(StepChecks, CompiledStaging, FinalStepWrites):
    """Writes one validated env step into a RingBuffer's storage and ring."""

    def __init__(self, writer: Writer):
        # Parts, taken once: the ring's arrays are updated in place, never rebound, and a new
        # storage comes with a new writer (the buffer rebuilds both).
        info, packed, ring = writer.env_info, writer.packed, writer.ring
        self._writer, self._ring, self._observers = writer, ring, writer.observers
        self._vector, num_envs = info.is_vector, packed.num_envs
        self._capacity = ring.capacity
        slots, row_bytes = packed.slots, packed.row_bytes
        self._frames = writer.frames
        self._observations = writer.views["observations"]
        layout = StageLayout.of(packed, ring.spare_rows, self._frames)
        obs_slots, obs_slot, frame_slots = layout.obs_slots, layout.obs_slot, layout.frame_slots
        spare, stage_bytes = ring.spare_rows, layout.stage_bytes
        self._stage = stage = np.zeros((num_envs, stage_bytes), np.uint8)  # whole 8-byte words
        vector = self._vector
        self._lead = lead = (num_envs,) if vector else ()
        next_slot = layout.next_slot
        # Dict observations are staged leaf by leaf (observation_leaves.py), arrays directly.
        self._leaves = None
        if isinstance(obs_slots, dict):
            next_slots = (shifted(obs_slots, row_bytes - obs_slot.offset) if spare
                          else slots["next_observations"])  # fmt: skip
            space = info.observation_space
            self._leaves = ObservationLeaves(stage, space, obs_slots, next_slots, vector, lead)
            self._obs_shape, self._obs_dtypes, self._obs_dtype = None, frozenset(), None
        elif self._frames is None:
            self._obs_shape, obs_dtype = lead + obs_slot.shape, obs_slot.dtype
            self._obs_dtypes, self._obs_dtype = castable_dtypes(obs_dtype), obs_dtype
        else:
            self._obs_shape = lead + tuple(info.observation_space.shape)
            self._obs_dtype = self._frames.dtype
            self._obs_dtypes = castable_dtypes(self._obs_dtype)
            self._staged_frames = tuple(env_view(stage, slot) for slot in frame_slots)
        self._same_step = info.autoreset_mode is AutoresetMode.SAME_STEP
        space = info.action_space
        staged_next = None
        if self._leaves is None:
            staged_next = step_view(stage, next_slot if spare else slots["next_observations"],
                                    vector)  # fmt: skip
        self._staged = (
            step_view(stage, obs_slot, vector) if self._leaves is None else None,
            staged_next,
            step_view(stage, slots["actions"], vector, isinstance(space, spaces.Discrete)),
            step_view(stage, slots["rewards"], vector)[..., 0],
            step_view(stage, slots["dones"], vector)[..., 0],
            step_view(stage, slots["truncateds"], vector)[..., 0],
        )
        self._action_shape = lead + given_action_shape(space)
        self._action_dtypes = action_dtypes(slots["actions"].dtype)
        self._action_dtype = slots["actions"].dtype
        self._scalar_action = not vector and isinstance(space, spaces.Discrete)
        # Extra fields sit in the packed row: staged like the others.
        self._extras = tuple(
            (name, step_view(stage, slot, vector), lead + slot.shape, castable_dtypes(slot.dtype))
            for name, slot in slots["extras"].items()
        )
        self._extra_names = {name for name, *_ in self._extras}
        staged_at = None if self._leaves is not None or self._frames is not None else (
            next_slot if spare else slots["next_observations"])  # fmt: skip
        self._control = make_control(packed, stage, ring, obs_slot, info.autoreset_mode, space,
                                     self._frames, frame_slots, staged_at)  # fmt: skip
        action_size = int(self._control[kernel.ACTION_SIZE])
        # A compressed frame store (its frames have a codec) is given its frames by the writer.
        compressed = self._frames is not None and self._frames.codec is not None
        self._compressed = (CompressedStepFrames(self._frames, self._control,
                                                 kernel.report_start(num_envs, action_size), vector)
                            if compressed else None)  # fmt: skip
        floats = self._control.view(np.float64)
        start = kernel.HEADER + 2 * action_size
        self._staged_action = floats[start : start + num_envs * action_size].reshape(
            self._action_shape
        )
        self._report_at = kernel.report_start(num_envs, action_size)
        # Compiled (or loaded from numba's disk cache) at the first add, not here: a buffer
        # only loaded and sampled never pays for it.
        self._write_step = self._compile_write_step
        self._invalidate_step = self._compile_invalidate_step
        self._stages_arrays = self._leaves is None and self._frames is None
        self._stages_frames = self._frames is not None and not compressed
        self._reporting = False  # control[REPORT] is set at the first add with observers
        self._trunc_zero = True  # the staged truncated flags are all zeros (see _write)
        self._stage_and_write = compiled_staging(
            vector, self._leaves is None and not self._extras and not compressed, obs_slot,
            self._frames, self._action_dtype,
        )  # fmt: skip
        self._staging_f32 = self._staging_f64 = None  # its entry points, at the first adds
        self._no_truncations = np.zeros(num_envs, bool)
        if self._leaves is not None:
            self.try_add = self._try_vector_dict if vector else self._try_single_dict
        else:
            self.try_add = self._try_vector if vector else self._try_single

    @classmethod
    def build(cls, writer: Writer) -> StepWriter | None:
        """A StepWriter for ``writer``'s parts, or None if they need the general path always:
        a ring too small for an episode end's rows, actions whose range a float64 check cannot
        decide, storage the kernel cannot write by address (frames: unless compressed, which
        the writer stores itself)."""
        frames = writer.frames
        by_address = [writer.packed.packed, *ring_arrays(writer.ring)]
        if frames is not None:  # a compressed store's frames are bytes objects, put by the writer
            by_address += [frames.episode_step] + ([frames.frames] if frames.codec is None else [])
        fits = (
            writer.ring.capacity >= 4  # an episode end's rows always fit (see Ring.plan)
            and exact_bounds(writer.env_info.action_space)
            and all(isinstance(a, np.ndarray) and a.flags.c_contiguous and a.flags.writeable
                    for a in by_address)  # the kernel writes them by address
        )  # fmt: skip
        return cls(writer) if fits else None

    def _compile_write_step(self, control: np.ndarray) -> int:
        """The first call of the kernel: compile it, keep its entry point, and call that."""
        self._write_step = kernel.compiled_write_step()
        return self._write_step(control)

    def _compile_invalidate_step(self, control: np.ndarray) -> int:
        """The same for the first of a compressed-frames step's two calls."""
        self._invalidate_step = compiled_invalidate_step()
        return self._invalidate_step(control)

    def try_add(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        done: Any,
        trunc: Any,
        extras: dict[str, Any],
        info: Any = None,
    ) -> bool:
        """Write the step and return True, or return False (nothing written) if unsure of it.

        (Replaced per instance by ``_try_single``, ``_try_vector`` or their Dict observation
        versions; this is the signature.)
        """
        raise NotImplementedError

    def _write(self, obs, action, reward, next_obs, done, trunc, extras, info) -> bool:
        """Stage the checked step and run the kernel; False if it declined (nothing written)."""
        staged_obs, staged_next, staged_action, staged_reward, staged_done, staged_trunc = (
            self._staged
        )
        arrays = self._stages_arrays
        if not arrays and self._leaves is not None and not self._leaves.stage(obs, next_obs):
            return False
        try:
            if arrays:
                staged_obs[...] = obs
                staged_next[...] = next_obs
            staged_action[...] = action
            self._staged_action[...] = action
            staged_reward[...] = reward
            if extras:
                for name, staged, _, _ in self._extras:
                    staged[...] = extras[name]
        except OverflowError:  # a Python int too large for the field: the general path's error
            return False
        staged_done[...] = done
        # Most steps pass trunc=False: the flags staged for the last one are then zeros already.
        if trunc is not False or not self._trunc_zero:
            staged_trunc[...] = trunc
            self._trunc_zero = trunc is False
        if not arrays and self._stages_frames:  # the newest frame of each stack
            staged_frame, staged_next_frame = self._staged_frames
            if self._vector:
                staged_frame[...] = obs[:, -1]
                staged_next_frame[...] = next_obs[:, -1]
            else:
                staged_frame[0] = obs[-1]
                staged_next_frame[0] = next_obs[-1]
        observers, writer = self._observers, self._writer
        if writer.unfinished:
            writer.recover_if_interrupted()
        if observers:
            self._start_report()
        result = (self._write_step(self._control) if self._compressed is None
                  else self._write_compressed(obs, next_obs))  # fmt: skip
        if result < 0 and result == NEEDS_FINAL_OBS and arrays:
            result = self._write_with_final_rows(done, trunc, info)
        if result < 0:  # nothing was written
            writer.unfinished = False
            if result == NEEDS_FINAL_OBS:  # staged again, with the final observations
                return self._write_final_observations(obs, action, reward, next_obs, done,
                                                      trunc, extras, info)  # fmt: skip
            return False  # out of range: the general path raises
        if observers:
            self._report(result, done, trunc)
        return True

    def _start_report(self) -> None:
        # Set before the compiled call: an interrupt between it and the observers leaves
        # the add unfinished, and the next one repairs what the observers keep.
        self._writer.unfinished = True
        if not self._reporting:
            self._control[kernel.REPORT] = 1
            self._reporting = True

    def _report(self, result: int, done: Any, trunc: Any) -> None:
        """Tell the observers what the step wrote (listed in the report), then the add is done."""
        ended = np.logical_or(done, trunc) if self._vector else np.array([done or trunc])
        report_written(self._observers, self._control, self._report_at, result, ended)
        self._writer.unfinished = False

    def _write_compressed(self, obs: ndarray, next_obs: ndarray) -> int:
        """The step into a compressed frame store: invalidate, put the frames, write and
        commit (step_invalidate.py); the kernel's result, or its negative code."""
        control = self._control
        invalidated = self._invalidate_step(control)
        if invalidated < 0:
            return invalidated  # declined: nothing changed
        self._compressed.put(invalidated & _COUNT_MASK, obs, next_obs)
        written = self._write_step(control)  # the same checks, on the same staged step: pass
        return written + (invalidated >> kernel.COUNT_BITS << kernel.COUNT_BITS)
