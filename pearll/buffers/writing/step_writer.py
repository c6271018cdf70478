"""The hot path: one env step (of a single env, or of every sub-env of a vector env).

``RingBuffer.add_trajectory`` is called once per env step, so its cost matters more than any
other. The general path (validate into ``(T, E, ...)`` arrays, plan rows, scatter, commit) costs
tens of microseconds per step. :class:`StepWriter` does the same for the common case (array
observations, extra fields declared flat, nothing overriding the write hooks) in three stages:

1. Checks in Python, by attribute compares only: types, shapes, and dtypes among those the
   general path accepts.
2. Staging: each field is assigned into a ``(E, stage_bytes)`` uint8 block laid out like a
   packed row (the same numpy assignments, so the same casts, as the general path's), and the
   action also, as float64, into the kernel's ``control`` array for the range check.
3. One compiled call (:func:`~pearll.buffers.writing.step_kernel.write_step`): checks every action
   against the space's bounds, then copies each sub-env's staged row into its ring, and updates
   the ring's bookkeeping as ``Ring.plan``/``Ring.commit`` do.

On CartPole this costs about half of SB3's add for one env, and as much as SB3's per
transition for an 8-env vector step (``python -m benchmarks.bench_buffers``), with every check
on: no ``validate=False`` is needed.

With frame stacks (Atari) the packed row holds the stack's depth instead of the observation:
the writer stages the depths (as the general path computes them), the kernel writes them with
the rest, and then the two frames are stored and the stacks the write broke are dropped,
through the same FrameStore and ``RingBuffer._break_stacks`` code as the general path.
Compressed frame stores always take the general path.

Anything the writer is unsure of (a list, a scalar observation, an action out of range, a
SAME_STEP episode end, a Python int too large for its field) is handed back, with nothing
written, to the general path, which handles it or raises its detailed error. Every check of the
general path stays on: the hot path only skips the work, never a check. Tests compare the two
paths byte for byte on random streams.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from pearll.buffers.core.spaces import always_exact, space_bounds
from pearll.buffers.storage.packed import Slot
from pearll.buffers.writing import step_kernel as kernel

ndarray = np.ndarray
SCALAR_NUMBERS = (float, int, np.floating, np.integer)
INTEGERS = (int, np.integer)
FLAGS = (bool, np.bool_)
BOOL = frozenset([np.dtype(np.bool_)])
NUMERIC = frozenset(np.dtype(c) for c in np.typecodes["AllInteger"] + np.typecodes["Float"] + "?")
# Integers below 2**53 are exact in float64, so the kernel's float64 range check of integer
# actions decides as the general path's integer compares do (float64 rounding is monotonic).
EXACT_INTEGER = 2**53
_COUNT_MASK = (1 << kernel.COUNT_BITS) - 1
# Where the kernel takes the addresses of Ring.pos, size, valid, count and prev_ended.
RING_ADDRESSES = (kernel.POS_AT, kernel.SIZE_AT, kernel.VALID_AT, kernel.COUNT_AT,
                  kernel.PREV_ENDED_AT)  # fmt: skip


class StepWriter:
    """Writes one validated env step into a RingBuffer's storage and ring."""

    def __init__(self, buffer: Any):
        from pearll.buffers.ring_buffer import RingBuffer

        # The ring is read from the buffer at every call, never kept: reset(), clear() and load()
        # replace it. The packed array is kept: a new one comes with a new writer.
        self._buffer = buffer
        info = buffer.env_info
        self._vector, num_envs = info.is_vector, buffer.num_envs
        packed = buffer._packed
        self._packed = np.asarray(packed.packed)  # a plain ndarray, also of a np.memmap
        slots, row_bytes = packed.slots, packed.row_bytes
        # With frame stacks a packed row holds no observation, only how deep its stack reaches
        # (frame_depth): the kernel writes depths where it would write observations, and
        # _write_frames stores the frames once it has written the rest.
        self._frames = buffer._frames
        obs_slot = slots["observations" if self._frames is None else "frame_depth"]
        self._kernel_obs_slot = obs_slot
        spare = buffer.spare_rows
        stage_bytes = row_bytes + (-(-obs_slot.nbytes // 8) * 8 if spare else 0)
        self._stage = np.zeros((num_envs, stage_bytes), np.uint8)  # whole 8-byte words
        lead = (num_envs,) if self._vector else ()
        self._lead = lead
        if self._frames is None:
            self._obs_shape, obs_dtype = lead + obs_slot.shape, obs_slot.dtype
        else:
            self._obs_shape = lead + tuple(info.observation_space.shape)
            obs_dtype = self._frames.dtype
        self._obs_dtypes = _castable_dtypes(obs_dtype)
        next_slot = Slot(row_bytes, obs_slot.dtype, obs_slot.shape, obs_slot.nbytes)
        if self._frames is not None:  # (frame stacks come with spare rows)
            self._staged_depths = (self._env_view(obs_slot), self._env_view(next_slot))
        self._next_step = info.autoreset_mode is AutoresetMode.NEXT_STEP
        self._staged = (
            self._view(obs_slot),
            self._view(next_slot if spare else slots["next_observations"]),
            self._view(slots["actions"], info.action_space),
            self._view(slots["rewards"])[..., 0],
            self._view(slots["dones"])[..., 0],
            self._view(slots["truncateds"])[..., 0],
        )
        space = info.action_space
        low, high = _action_bounds(space)
        self._action_shape = lead + _given_action_shape(space)
        self._action_dtypes = _action_dtypes(slots["actions"].dtype)
        self._scalar_action = not self._vector and isinstance(space, spaces.Discrete)
        # Extra fields sit in the packed row: staged like the others.
        self._extras = tuple(
            (name, self._view(slot), lead + slot.shape, _castable_dtypes(slot.dtype))
            for name, slot in slots["extras"].items()
        )
        self._extra_names = {name for name, *_ in self._extras}
        self._reports = type(buffer)._on_written is not RingBuffer._on_written
        self._control = self._make_control(buffer.spare_rows, info.autoreset_mode, low, high)
        floats = self._control.view(np.float64)
        start = kernel.HEADER + 2 * low.size
        self._staged_action = floats[start : start + num_envs * low.size].reshape(
            self._action_shape
        )
        self._report_at = kernel.report_start(num_envs, low.size)
        # Compiled (or loaded from numba's disk cache) at the first add, not here: a buffer
        # only loaded and sampled never pays for it.
        self._write_step = self._compile_write_step
        self._ring_arrays = (None,) * 5  # the Ring's arrays the kernel has (see _adopt_ring)
        self.try_add = self._try_vector if self._vector else self._try_single

    def _compile_write_step(self, control: np.ndarray) -> int:
        """The first call of the kernel: compile it, keep its entry point, and call that."""
        self._write_step = kernel.compiled_write_step()
        return self._write_step(control)

    def _make_control(
        self, spare: bool, mode: AutoresetMode, low: np.ndarray, high: np.ndarray
    ) -> np.ndarray:
        """The kernel's ``control`` array: constants, action bounds, staged actions, report."""
        slots = self._buffer._packed.slots
        control = np.zeros(kernel.control_size(len(self._stage), low.size), np.int64)
        control[kernel.SPARE_ROWS] = spare
        control[kernel.NEXT_STEP] = mode is AutoresetMode.NEXT_STEP
        control[kernel.SAME_STEP] = mode is AutoresetMode.SAME_STEP
        control[kernel.OBS_OFFSET] = self._kernel_obs_slot.offset
        control[kernel.OBS_BYTES] = self._kernel_obs_slot.nbytes
        control[kernel.MIRROR] = self._buffer._packed.mirror
        control[kernel.DONES_OFFSET] = slots["dones"].offset
        control[kernel.TRUNCATEDS_OFFSET] = slots["truncateds"].offset
        control[kernel.ACTION_SIZE] = low.size
        control[kernel.REPORT] = self._reports
        control[kernel.NUM_ENVS], control[kernel.STAGE_BYTES] = self._stage.shape
        control[kernel.CAPACITY] = self._buffer.buffer_size
        _, control[kernel.PACKED_ROWS], control[kernel.ROW_BYTES] = self._packed.shape
        control[kernel.PACKED_AT] = _address(self._packed)
        control[kernel.STAGE_AT] = _address(self._stage)
        bounds = control.view(np.float64)[kernel.HEADER : kernel.HEADER + 2 * low.size]
        bounds[:] = np.concatenate([low.reshape(-1), high.reshape(-1)])
        return control

    def _view(self, slot: Slot, space: spaces.Space | None = None) -> np.ndarray:
        """The staging block's ``(E, ...)`` view of ``slot`` (``(...)`` for a single env).

        A Discrete action is given without the stored trailing axis of 1: its view drops it.
        """
        view = self._env_view(slot)
        if not self._vector:
            view = view[0, ...]  # a view even of a scalar slot
        # With the Ellipsis, the last index gives a 0-d view for a single env, not a scalar.
        return view[..., 0] if isinstance(space, spaces.Discrete) else view

    def _env_view(self, slot: Slot) -> np.ndarray:
        """The staging block's ``(E, ...)`` view of ``slot``, for single envs too."""
        item = slot.dtype.itemsize
        inner = tuple(int(np.prod(slot.shape[i + 1 :], dtype=np.int64)) * item
                      for i in range(len(slot.shape)))  # fmt: skip
        return np.ndarray(
            shape=(len(self._stage), *slot.shape),
            dtype=slot.dtype,
            buffer=self._stage,
            offset=slot.offset,
            strides=(self._stage.strides[0], *inner),
        )

    @staticmethod
    def applies_to(buffer: Any) -> bool:
        """Whether ``buffer`` can use this writer (else it always takes the general path)."""
        from pearll.buffers.ring_buffer import RingBuffer

        cls = type(buffer)
        return (
            isinstance(buffer._storage["observations"], np.ndarray)  # not compressed frames
            and all(isinstance(v, np.ndarray) for v in buffer._storage["extras"].values())
            and buffer.buffer_size >= 4  # an episode end's rows always fit (see Ring.plan)
            and cls._add is RingBuffer._add
            and cls._write is RingBuffer._write
            and _exact_bounds(buffer.env_info.action_space)
            and buffer._packed.packed.flags.c_contiguous  # the kernel writes it by address
            and buffer._packed.packed.flags.writeable
        )

    def try_add(
        self,
        obs: Any,
        action: Any,
        reward: Any,
        next_obs: Any,
        done: Any,
        trunc: Any,
        extras: dict[str, Any],
    ) -> bool:
        """Write the step and return True, or return False (nothing written) if unsure of it.

        (Replaced per instance by ``_try_single`` or ``_try_vector``; this is the signature.)
        """
        raise NotImplementedError

    def _try_single(
        self, obs, action, reward, next_obs, done, trunc, extras
    ) -> bool:  # see try_add
        shape, dtypes = self._obs_shape, self._obs_dtypes
        return (
            obs.__class__ is ndarray and obs.shape == shape and obs.dtype in dtypes
            and next_obs.__class__ is ndarray and next_obs.shape == shape
            and next_obs.dtype in dtypes
            and ((action.__class__ is ndarray and action.shape == self._action_shape
                  and action.dtype in self._action_dtypes)
                 or (self._scalar_action and isinstance(action, INTEGERS)))
            and isinstance(reward, SCALAR_NUMBERS)
            and isinstance(done, FLAGS) and isinstance(trunc, FLAGS)
            and (self._extras_fit(extras) if self._extras else not extras)
            and self._write(obs, action, reward, next_obs, done, trunc, extras)
        )  # fmt: skip

    def _try_vector(
        self, obs, action, reward, next_obs, done, trunc, extras
    ) -> bool:  # see try_add
        # x.__class__ is cheaper than type(x); every check here is a few tens of nanoseconds.
        shape, dtypes, lead = self._obs_shape, self._obs_dtypes, self._lead
        return (
            obs.__class__ is ndarray and obs.shape == shape and obs.dtype in dtypes
            and next_obs.__class__ is ndarray and next_obs.shape == shape
            and next_obs.dtype in dtypes
            and action.__class__ is ndarray and action.shape == self._action_shape
            and action.dtype in self._action_dtypes
            and reward.__class__ is ndarray and reward.shape == lead and reward.dtype in NUMERIC
            and done.__class__ is ndarray and done.shape == lead and done.dtype in BOOL
            and ((trunc.__class__ is ndarray and trunc.shape == lead and trunc.dtype in BOOL)
                 or isinstance(trunc, FLAGS))  # a scalar is broadcast, as the general path does
            and (self._extras_fit(extras) if self._extras else not extras)
            and self._write(obs, action, reward, next_obs, done, trunc, extras)
        )  # fmt: skip

    def _extras_fit(self, extras: dict[str, Any]) -> bool:
        """Whether ``extras`` holds every declared extra field, each an array (or a numpy
        scalar) of its exact shape and a dtype the general path accepts."""
        if extras.keys() != self._extra_names:
            return False
        for name, _, shape, dtypes in self._extras:
            value = extras[name]
            if not (
                (value.__class__ is ndarray or isinstance(value, np.generic))
                and value.shape == shape and value.dtype in dtypes
            ):  # fmt: skip
                return False
        return True

    def _write(self, obs, action, reward, next_obs, done, trunc, extras) -> bool:
        """Stage the checked step and run the kernel; False if it declined (nothing written)."""
        staged_obs, staged_next, staged_action, staged_reward, staged_done, staged_trunc = (
            self._staged
        )
        try:
            if self._frames is None:
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
        staged_trunc[...] = trunc
        ring, known = self._buffer._ring, self._ring_arrays
        if not (
            ring.pos is known[0] and ring.size is known[1] and ring.valid is known[2]
            and ring.count is known[3] and ring.prev_ended is known[4]
        ) and not self._adopt_ring(
            (ring.pos, ring.size, ring.valid, ring.count, ring.prev_ended)
        ):  # fmt: skip
            return False
        if self._frames is None:
            result = self._write_step(self._control)
            broken = None
        else:
            result, broken = self._write_with_frames(ring, obs, next_obs, done, trunc)
        if result < 0:
            return False  # out of range (the general path raises) or a SAME_STEP episode end
        if self._reports:
            self._report_written(result, broken)
        return True

    def _write_with_frames(self, ring, obs, next_obs, done, trunc) -> tuple[int, Any]:
        """The kernel's write with frame depths staged, then the frames and broken stacks.

        Returns the kernel's result and the ``(rows, envs)`` whose stacks the write broke.
        """
        frames, num_envs = self._frames, len(self._stage)
        ended = np.logical_or(done, trunc).reshape(num_envs)
        # NEXT_STEP reset steps are dropped (by the kernel too), as in the general path.
        keep = ~ring.prev_ended if self._next_step else np.ones(num_envs, dtype=bool)
        rows = ring.pos.copy()
        episode_step = frames.episode_step
        depth, next_depth = frames.depths(keep[None], (ended & keep)[None])
        self._staged_depths[0][...] = depth[0]
        self._staged_depths[1][...] = next_depth[0]
        result = self._write_step(self._control)
        if result < 0:
            frames.episode_step = episode_step  # nothing was written
            return result, None
        envs = np.flatnonzero(keep)
        observations = self._buffer._storage["observations"]  # the frames, (capacity, E, ...)
        capacity = self._buffer.buffer_size
        if self._vector:
            rows = rows[envs]
            observations[rows, envs] = obs[envs, -1]
            observations[(rows + 1) % capacity, envs] = next_obs[envs, -1]
        elif len(envs):  # scalar indexing: a few µs less than index arrays
            row = int(rows[0])
            observations[row, 0] = obs[-1]
            observations[(row + 1) % capacity, 0] = next_obs[-1]
        return result, self._buffer._break_stacks(envs)

    def _adopt_ring(self, arrays: tuple[np.ndarray, ...]) -> bool:
        """Give the kernel the addresses of the Ring's arrays (new ones: a commit, a clear or a
        load replaced some), if they are what it assumes: C-contiguous, writable, of their
        dtypes and shapes. They are kept referenced, so the addresses stay valid."""
        num_envs, capacity = len(self._stage), self._buffer.buffer_size
        shapes = ((num_envs,), (num_envs,), (capacity, num_envs), (num_envs,), (num_envs,))
        dtypes = (np.int64, np.int64, np.bool_, np.int64, np.bool_)
        if not all(
            isinstance(a, np.ndarray) and a.shape == shape and a.dtype == dtype
            and a.flags.c_contiguous and a.flags.writeable
            for a, shape, dtype in zip(arrays, shapes, dtypes, strict=True)
        ):  # fmt: skip
            return False
        for index, array in zip(RING_ADDRESSES, arrays, strict=True):
            self._control[index] = _address(array)
        self._ring_arrays = arrays
        return True

    def _report_written(self, result: int, broken: Any) -> None:
        """Tell the buffer's ``_on_written`` which slots the kernel wrote and passed over (and
        the ``broken`` ``(rows, envs)`` of frame stacks, if any, as passed over too)."""
        written, passed = result & _COUNT_MASK, result >> kernel.COUNT_BITS
        e = len(self._stage)
        report = self._control[self._report_at : self._report_at + 8 * e].copy()
        passed_rows, passed_envs = report[2 * e : 2 * e + passed], report[5 * e : 5 * e + passed]
        if broken is not None:
            passed_rows = np.concatenate([passed_rows, broken[0]])
            passed_envs = np.concatenate([passed_envs, broken[1]])
        self._buffer._on_written(
            report[:written], report[e : e + written], passed_rows, passed_envs
        )


def _address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def _castable_dtypes(target: np.dtype) -> frozenset[np.dtype]:
    """The dtypes whose every value ``target`` holds exactly (see spaces.always_exact): the
    hot path takes them unchecked; any other (float into an integer field, int64 into uint8)
    goes to the general path, which checks the values."""
    return frozenset(d for d in NUMERIC if always_exact(d, target))


def _action_dtypes(target: np.dtype) -> frozenset[np.dtype]:
    """The dtypes the hot path takes for actions: those of :func:`_castable_dtypes`, and for an
    integer field every integer dtype, because the kernel's range check refuses (unwritten)
    each value outside the space, whose bounds lie within the field's dtype."""
    exact = _castable_dtypes(target)
    if target.kind not in "iu":
        return exact
    return exact | frozenset(d for d in NUMERIC if d.kind in "biu")


def _given_action_shape(space: spaces.Space) -> tuple[int, ...]:
    """The shape of one action as the env gives it (a Discrete one is a scalar)."""
    return () if isinstance(space, spaces.Discrete) else tuple(space.shape)


def _action_bounds(space: spaces.Space) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` float64 arrays of the stored action shape, as spaces.coerce checks them."""
    bounds = space_bounds(space)
    if bounds is None:
        raise TypeError(f"unsupported action space {space!r}")
    low, high = bounds
    shape = (1,) if isinstance(space, spaces.Discrete) else tuple(space.shape)
    as_float = lambda bound: np.broadcast_to(np.asarray(bound, np.float64), shape)  # noqa: E731
    return as_float(low), as_float(high)


def _exact_bounds(space: spaces.Space) -> bool:
    """Whether a float64 range check decides as the general path's check does."""
    if isinstance(space, spaces.Box) and space.dtype.kind == "f":
        return True  # float bounds are exact in float64
    if space_bounds(space) is None:
        return False  # a space the writer cannot check: the general path takes every add
    low, high = _action_bounds(space)
    return bool(np.all(np.abs(low) < EXACT_INTEGER) and np.all(np.abs(high) < EXACT_INTEGER))
