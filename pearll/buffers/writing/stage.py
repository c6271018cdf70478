"""The step writer's staging block and the kernel's ``control`` array, laid out from the parts.

A step is staged into a ``(E, stage_bytes)`` uint8 block laid out like a packed row (numpy's
assignments do the dtype casts), followed, in the ReplayBuffer layout, by the next
observation's bytes, which the kernel copies into the next row. This module builds the block,
the typed views of it that staging assigns through, and ``control`` (see step_kernel.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode

from pearll.buffers.core.ring import Ring
from pearll.buffers.core.spaces import always_exact, space_bounds
from pearll.buffers.storage.packed import PackedStorage, Slot
from pearll.buffers.writing import step_kernel as kernel

NUMERIC = frozenset(np.dtype(c) for c in np.typecodes["AllInteger"] + np.typecodes["Float"] + "?")
# Integers below 2**53 are exact in float64, so the kernel's float64 range check of integer
# actions decides as the general path's integer compares do (float64 rounding is monotonic).
EXACT_INTEGER = 2**53
# Where the kernel takes the addresses of Ring.pos, size, valid, count and prev_ended.
RING_ADDRESSES = (kernel.POS_AT, kernel.SIZE_AT, kernel.VALID_AT, kernel.COUNT_AT,
                  kernel.PREV_ENDED_AT)  # fmt: skip


@dataclass(frozen=True)
class StageLayout:
    """Where a staged row holds what: a packed row first, then (spare rows) the next
    observation's bytes, then (frame stacks) the step's newest frame and its next observation's.

    With frame stacks a packed row holds no observation, only how deep its stack reaches
    (``frame_depth``): the kernel works the depths out and writes them there, and copies the
    two staged frames into the frame store.
    """

    obs_slots: Any  # the Slot tree the observation fills in a packed row (frame_depth: frames)
    obs_slot: Slot  # one byte span covering it, the bytes the kernel copies as next observation
    next_slot: Slot  # where the staged next observation sits (spare rows)
    frame_slots: tuple[Slot, Slot] | None  # the two staged frames
    stage_bytes: int  # bytes of a staged row: whole 8-byte words

    @classmethod
    def of(cls, packed: PackedStorage, spare: bool, frames: Any) -> StageLayout:
        slots, row_bytes = packed.slots, packed.row_bytes
        obs_slots = slots["observations" if frames is None else "frame_depth"]
        obs_slot = observation_span(obs_slots)
        stage_bytes = row_bytes + (-(-obs_slot.nbytes // 8) * 8 if spare else 0)
        frame_slots = None
        if frames is not None:  # (frame stacks come with spare rows)
            frame_bytes = int(np.prod(frames.frame_shape, dtype=np.int64)) * frames.dtype.itemsize
            frame_slots = tuple(Slot(stage_bytes + i * frame_bytes, frames.dtype,
                                     frames.frame_shape, frame_bytes) for i in (0, 1))  # fmt: skip
            stage_bytes += -(-2 * frame_bytes // 8) * 8
        next_slot = Slot(row_bytes, obs_slot.dtype, obs_slot.shape, obs_slot.nbytes)
        return cls(obs_slots, obs_slot, next_slot, frame_slots, stage_bytes)


def observation_span(slots: Any) -> Slot:
    """One byte Slot covering every leaf of an observation Slot tree (a single leaf: itself).

    The kernel copies a next observation as one run of bytes: the leaves of a Dict
    observation are laid out one after the other (storage/packed.py places the observations
    first), so their span holds nothing else.
    """
    if isinstance(slots, Slot):
        return slots
    leaves = list(_slot_leaves(slots))
    start = min(leaf.offset for leaf in leaves)
    end = max(leaf.offset + leaf.nbytes for leaf in leaves)
    return Slot(start, np.dtype(np.uint8), (end - start,), end - start)


def shifted(slots: Any, by: int) -> Any:
    """The Slot tree ``slots`` with every offset moved by ``by`` bytes."""
    if isinstance(slots, Slot):
        return Slot(slots.offset + by, slots.dtype, slots.shape, slots.nbytes)
    return {key: shifted(sub, by) for key, sub in slots.items()}


def _slot_leaves(slots: Any):
    if isinstance(slots, Slot):
        yield slots
    else:
        for sub in slots.values():
            yield from _slot_leaves(sub)


def env_view(stage: np.ndarray, slot: Slot) -> np.ndarray:
    """The staging block's ``(E, ...)`` view of ``slot``."""
    item = slot.dtype.itemsize
    inner = tuple(int(np.prod(slot.shape[i + 1 :], dtype=np.int64)) * item
                  for i in range(len(slot.shape)))  # fmt: skip
    return np.ndarray(
        shape=(len(stage), *slot.shape),
        dtype=slot.dtype,
        buffer=stage,
        offset=slot.offset,
        strides=(stage.strides[0], *inner),
    )


def step_view(stage: np.ndarray, slot: Slot, vector: bool, discrete: bool = False) -> np.ndarray:
    """The view staging assigns a step's value of ``slot`` through: ``(E, ...)``, or ``(...)``
    for a single env. A Discrete action is given without the stored trailing axis of 1."""
    view = env_view(stage, slot)
    if not vector:
        view = view[0, ...]  # a view even of a scalar slot
    # With the Ellipsis, the last index gives a 0-d view for a single env, not a scalar.
    return view[..., 0] if discrete else view


def make_control(
    packed: PackedStorage,
    stage: np.ndarray,
    ring: Ring,
    obs_slot: Slot,
    mode: AutoresetMode,
    action_space: spaces.Space,
    frames: Any = None,
    frame_slots: tuple[Slot, Slot] | None = None,
    next_slot: Slot | None = None,
) -> np.ndarray:
    """The kernel's ``control`` array: constants, addresses, action bounds (see step_kernel).

    With ``frames`` (a FrameStore), ``frame_slots`` are where a staged row holds the step's
    newest frame and its next observation's (staged unless the store is compressed);
    ``next_slot`` is where it holds the next observation (None: nowhere, frame stacks)."""
    low, high = action_bounds(action_space)
    slots, array = packed.slots, np.asarray(packed.packed)
    stack = frames.spec.size if frames is not None else 0
    passed_per_env = kernel.passed_per_env(stack)
    control = np.zeros(kernel.control_size(len(stage), low.size, passed_per_env), np.int64)
    control[kernel.PASSED_PER_ENV] = passed_per_env
    if frames is not None:
        control[kernel.FRAMES] = 1
        if frames.codec is None:
            control[kernel.FRAMES_AT] = address(np.asarray(frames.frames))
        else:  # compressed frames: the step writer puts them (step_invalidate.py)
            control[kernel.FRAMES_PUT] = 1
        control[kernel.FRAME_BYTES] = frame_slots[0].nbytes
        control[kernel.EPISODE_STEP_AT] = address(frames.episode_step)
        control[kernel.STACK_SIZE] = stack
        control[kernel.STAGED_FRAMES_AT] = frame_slots[0].offset
    control[kernel.SPARE_ROWS] = ring.spare_rows
    control[kernel.NEXT_STEP] = mode is AutoresetMode.NEXT_STEP
    control[kernel.SAME_STEP] = mode is AutoresetMode.SAME_STEP
    control[kernel.OBS_OFFSET] = obs_slot.offset
    control[kernel.OBS_BYTES] = obs_slot.nbytes
    control[kernel.MIRROR] = packed.mirror
    control[kernel.DONES_OFFSET] = slots["dones"].offset
    control[kernel.REWARDS_OFFSET] = slots["rewards"].offset
    control[kernel.TRUNCATEDS_OFFSET] = slots["truncateds"].offset
    control[kernel.ACTIONS_OFFSET] = slots["actions"].offset
    control[kernel.NEXT_STAGED_AT] = -1 if next_slot is None else next_slot.offset
    control[kernel.ACTION_SIZE] = low.size
    control[kernel.NUM_ENVS], control[kernel.STAGE_BYTES] = stage.shape
    control[kernel.CAPACITY] = ring.capacity
    _, control[kernel.PACKED_ROWS], control[kernel.ROW_BYTES] = array.shape
    control[kernel.PACKED_AT] = address(array)
    control[kernel.STAGE_AT] = address(stage)
    for index, ring_array in zip(RING_ADDRESSES, ring_arrays(ring), strict=True):
        control[index] = address(ring_array)
    bounds = control.view(np.float64)[kernel.HEADER : kernel.HEADER + 2 * low.size]
    bounds[:] = np.concatenate([low.reshape(-1), high.reshape(-1)])
    return control


def address(array: np.ndarray) -> int:
    return array.__array_interface__["data"][0]


def ring_arrays(ring: Ring) -> tuple[np.ndarray, ...]:
    """The Ring's arrays the kernel writes, in the order of RING_ADDRESSES."""
    return ring.pos, ring.size, ring.valid, ring.count, ring.prev_ended


def castable_dtypes(target: np.dtype) -> frozenset[np.dtype]:
    """The dtypes whose every value ``target`` holds exactly (see spaces.always_exact): the
    hot path takes them unchecked; any other (float into an integer field, int64 into uint8)
    goes to the general path, which checks the values."""
    return frozenset(d for d in NUMERIC if always_exact(d, target))


def action_dtypes(target: np.dtype) -> frozenset[np.dtype]:
    """The dtypes the hot path takes for actions: those of :func:`castable_dtypes`, and for an
    integer field every integer dtype, because the kernel's range check refuses (unwritten)
    each value outside the space, whose bounds lie within the field's dtype."""
    exact = castable_dtypes(target)
    if target.kind not in "iu":
        return exact
    return exact | frozenset(d for d in NUMERIC if d.kind in "biu")


def given_action_shape(space: spaces.Space) -> tuple[int, ...]:
    """The shape of one action as the env gives it (a Discrete one is a scalar)."""
    return () if isinstance(space, spaces.Discrete) else tuple(space.shape)


def action_bounds(space: spaces.Space) -> tuple[np.ndarray, np.ndarray]:
    """``(low, high)`` float64 arrays of the stored action shape, as spaces.coerce checks them."""
    bounds = space_bounds(space)
    if bounds is None:
        raise TypeError(f"unsupported action space {space!r}")
    low, high = bounds
    shape = (1,) if isinstance(space, spaces.Discrete) else tuple(space.shape)
    as_float = lambda bound: np.broadcast_to(np.asarray(bound, np.float64), shape)  # noqa: E731
    return as_float(low), as_float(high)


def exact_bounds(space: spaces.Space) -> bool:
    """Whether a float64 range check decides as the general path's check does."""
    if isinstance(space, spaces.Box) and space.dtype.kind == "f":
        return True  # float bounds are exact in float64
    if space_bounds(space) is None:
        return False  # a space the writer cannot check: the general path takes every add
    low, high = action_bounds(space)
    return bool(np.all(np.abs(low) < EXACT_INTEGER) and np.all(np.abs(high) < EXACT_INTEGER))
