"""Frame-stacked observations (Atari) stored one frame per row, stacks rebuilt at read time.

Gymnasium's ``FrameStackObservation(env, k)`` returns the k newest frames at every step, so a
buffer that stores each observation whole keeps every frame k times (and twice more for next
observations). :class:`FrameStore` keeps one frame per row (the newest of the stack) and, per
row, how many earlier frames of the same episode the stack holds (``depth``, at most k - 1).
A stack is rebuilt from the row's frame and the ``depth`` rows before it; slots older than the
episode are padding, as the wrapper pads: the episode's first frame (``padding="reset"``, the
wrapper's default) or a constant frame (``"zero"`` or a custom padding observation).

Exactness at the ring's wraparound: writing a row overwrites a frame that the stacks of the
next k - 1 rows (the oldest ones) may still reach back to; those rows stop being transitions
(:meth:`FrameStore.broken_rows`), so no stack ever mixes episodes or generations of the ring.
The buffer assumes each stack is the previous one shifted by a frame, as the wrapper makes them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from numba import njit


@dataclass(frozen=True, eq=False)
class FrameStackSpec:
    """How observations are stacked: ``size`` frames, padded with ``padding`` at episode starts."""

    size: int
    padding: str | np.ndarray  # "reset", or the constant frame used as padding

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, FrameStackSpec) or self.size != other.size:
            return False
        if isinstance(self.padding, str) or isinstance(other.padding, str):
            both_words = isinstance(self.padding, str) and isinstance(other.padding, str)
            return both_words and self.padding == other.padding
        return np.array_equal(self.padding, other.padding)

    def to_json(self) -> int | list:
        """What ``frame_stack=`` takes to rebuild this spec: k, or ``[k, padding frame]``."""
        if isinstance(self.padding, str):
            return self.size
        return [self.size, self.padding.tolist()]


def resolve_frame_stack(env: Any, option: Any, observation_space: spaces.Space) -> Any:
    """The FrameStackSpec for ``option``: ``"auto"`` (detect the wrapper), None, an int k, or
    ``(k, padding)``.

    An int declares k frames padded as ``"reset"`` (the episode's first frame, the wrapper's
    default); ``(k, padding)`` pads with ``"reset"`` or a constant frame (array-like); a
    FrameStackSpec is taken as it is.
    """
    if option is None or option is False:
        return None
    spec = _detect(env) if isinstance(option, str) and option == "auto" else option
    if isinstance(spec, int | np.integer) and not isinstance(spec, bool):
        spec = FrameStackSpec(int(spec), "reset")
    elif isinstance(spec, list | tuple) and len(spec) == 2:
        size, padding = spec
        if not (isinstance(padding, str) and padding == "reset"):
            padding = np.asarray(padding, dtype=observation_space.dtype)
        spec = FrameStackSpec(int(size), padding)
    if spec is None:
        return None
    if not isinstance(spec, FrameStackSpec):
        raise TypeError(f"frame_stack: expected 'auto', None or an int, got {option!r}")
    shape = getattr(observation_space, "shape", None)
    if not isinstance(observation_space, spaces.Box) or not shape or shape[0] != spec.size:
        raise ValueError(
            f"frame_stack={spec.size}: expected a Box observation space of shape "
            f"({spec.size}, ...), got {observation_space}"
        )
    if spec.size < 2:
        return None
    return spec


STACK_ATTRIBUTES = ("stack_size", "padding_type", "padding_value")


def _detect(env: Any) -> FrameStackSpec | None:
    """A FrameStackObservation wrapper's settings, from a single env or a vector env's sub-envs.

    A vector env that keeps its sub-envs here (SyncVectorEnv) is read directly. One whose
    sub-envs live in worker processes (AsyncVectorEnv) is asked with ``has_wrapper_attr``
    first: a worker asked for an attribute its env lacks raises, and Gymnasium then shuts down
    every worker, so only attributes known to exist are ever read there.
    """
    if not hasattr(env, "num_envs"):
        return _wrapper_settings(env)
    sub_envs = getattr(getattr(env, "unwrapped", env), "envs", None)
    if sub_envs:
        return _wrapper_settings(sub_envs[0])
    if not callable(getattr(env, "call", None)):
        return None
    if not all(all(env.call("has_wrapper_attr", name)) for name in STACK_ATTRIBUTES):
        return None
    size, padding_type, padding_value = (env.get_attr(name)[0] for name in STACK_ATTRIBUTES)
    return _spec(size, padding_type, padding_value)


def _wrapper_settings(env: Any) -> FrameStackSpec | None:
    """The FrameStackObservation settings of a local env's wrappers, or None."""
    try:
        size, padding_type, padding_value = (
            env.get_wrapper_attr(name) for name in STACK_ATTRIBUTES
        )
    except (AttributeError, NotImplementedError):
        return None
    return _spec(size, padding_type, padding_value)


def _spec(size: Any, padding_type: Any, padding_value: Any) -> FrameStackSpec:
    padding = "reset" if padding_type == "reset" else np.asarray(padding_value).copy()
    return FrameStackSpec(int(size), padding)


class FrameStore:
    """The frames of E sub-envs' rings, and the stacks rebuilt from them."""

    # The codec its frames are kept with (CompressedFrameStore), or None: raw frames, in one
    # array that the step writer's kernel writes by address.
    codec: Any = None

    def __init__(
        self,
        spec: FrameStackSpec,
        space: spaces.Box,
        capacity: int,
        num_envs: int,
        zeros: Callable[[tuple[int, ...], Any], np.ndarray] = np.zeros,
    ):
        if capacity < spec.size + 2:
            raise ValueError(
                f"buffer_size: expected at least frame_stack + 2 = {spec.size + 2} rows for "
                f"{spec.size}-frame stacks, got {capacity}"
            )
        self.spec, self.capacity = spec, capacity
        # A write of T steps spans at most 2T rows plus a pending one; with the k - 1 rows
        # after it checked for broken stacks, it must not reach its own first row.
        self.max_steps_per_write = max(1, (capacity - spec.size) // 2)
        self._back = np.arange(spec.size - 1, -1, -1)  # slot j holds the frame k-1-j steps back
        self.frame_shape, self.dtype = tuple(space.shape[1:]), np.dtype(space.dtype)
        self.num_envs = num_envs
        episode_step = np.zeros(num_envs, dtype=np.int64)  # kept steps since episode start
        self.restore(self._new_frames(zeros), episode_step)

    def _new_frames(self, zeros: Callable[[tuple[int, ...], Any], np.ndarray]) -> Any:
        # (E, capacity, *frame) so that np.take of flat rows gathers contiguous frames.
        return zeros((self.num_envs, self.capacity, *self.frame_shape), self.dtype)

    def restore(self, frames: np.ndarray, episode_step: np.ndarray) -> None:
        """Use ``frames`` ``(E, capacity, *frame)`` and ``episode_step`` (new, or loaded)."""
        self.frames, self.episode_step = frames, episode_step
        self.flat_frames = frames.reshape(-1, *self.frame_shape)
        self.view = frames.swapaxes(0, 1)  # (capacity, E, *frame): the field view

    def __getstate__(self) -> dict[str, Any]:
        # Views would be pickled (and deep-copied) as separate arrays: rebuild them instead.
        return {k: v for k, v in self.__dict__.items() if k not in ("flat_frames", "view")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.restore(self.frames, self.episode_step)

    def state(self) -> dict[str, Any]:
        """What persistence saves (see RingBuffer._state); :meth:`set_state` puts it back."""
        return {"frames": self.frames, "episode_step": self.episode_step}

    def set_state(self, state: dict[str, Any]) -> None:
        self.restore(state["frames"], state["episode_step"])

    @staticmethod
    def required_bytes(space: spaces.Box, capacity: int, num_envs: int) -> int:
        return num_envs * capacity * frame_bytes(space) + step_counter_bytes(num_envs)

    @property
    def nbytes(self) -> int:
        return self.frames.nbytes + self.episode_step.nbytes

    def depths(self, keep: np.ndarray, ended: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(T, E)`` depths of each step's observation and next observation; advances state."""
        depth, next_depth, episode_step = _depths(
            keep, ended, self.episode_step, self.spec.size - 1
        )
        self.episode_step[:] = episode_step  # in place: the step writer's kernel holds it
        return depth, next_depth

    def broken_rows(
        self, depth: np.ndarray, valid: np.ndarray, newest_rows: np.ndarray, envs: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Valid rows whose stacks reach back to a row just overwritten.

        ``newest_rows[i]`` is the last row written for sub-env ``envs[i]``; the k - 1 rows after
        it are the oldest of that ring, and a stack of depth d at offset o reaches it if d >= o.
        Returns their ``(rows, envs)``, sub-env by sub-env, oldest first.
        """
        return _broken_rows(depth, valid, newest_rows, envs, self.spec.size)

    def stacks(self, rows: np.ndarray, envs: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """``(E', B, k, *frame)`` stacks of ``rows`` (E', B) of sub-envs ``envs`` (E', 1)."""
        return self._padded(self.take(self._sources(rows, envs, depth)), depth)

    def stack_pairs(
        self,
        rows: np.ndarray,
        following: np.ndarray,
        envs: np.ndarray,
        depth: np.ndarray,
        next_depth: np.ndarray,
    ) -> tuple[np.ndarray, np.ndarray]:
        """The stacks of ``rows`` and of ``following`` (E', B) at once: one :meth:`take` of the
        frames both need (observations and next observations share all but one frame)."""
        sources = np.stack(
            [self._sources(rows, envs, depth), self._sources(following, envs, next_depth)]
        )
        observations, next_observations = self.take(sources)
        return self._padded(observations, depth), self._padded(next_observations, next_depth)

    def take(self, flat: np.ndarray) -> np.ndarray:
        """The frames at ``flat`` indices (``env * capacity + row``), shape ``(*flat.shape,
        *frame)``: a new array."""
        return self.flat_frames.take(flat.reshape(-1), axis=0).reshape(
            (*flat.shape, *self.frame_shape)
        )

    def _sources(self, rows: np.ndarray, envs: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """``(*rows.shape, k)`` flat indices of each stack's frames, oldest slot first."""
        steps_back = np.minimum(self._back, depth[..., None])
        return envs[..., None] * self.capacity + (rows[..., None] - steps_back) % self.capacity

    def _padded(self, stacks: np.ndarray, depth: np.ndarray) -> np.ndarray:
        """``stacks`` with the slots older than the episode set to the constant padding frame
        (with ``"reset"`` padding the sources already repeat the episode's first frame)."""
        if isinstance(self.spec.padding, np.ndarray):
            stacks[self._back > depth[..., None]] = self.spec.padding
        return stacks


# Compiled, because an add of one step calls both once: numpy's per-call cost on these few
# values was 20 µs of a 40 µs frame-stacked add.


@njit(cache=True, nogil=True)
def _depths(keep, ended, episode_step, limit):
    """FrameStore.depths on ``(T, E)`` flags: the depths, and the episode steps after them."""
    depth = np.empty(keep.shape, dtype=np.int64)
    next_depth = np.empty(keep.shape, dtype=np.int64)
    current = episode_step.copy()
    for t in range(keep.shape[0]):
        for e in range(keep.shape[1]):
            depth[t, e] = min(current[e], limit)
            next_depth[t, e] = min(current[e] + 1, limit)
            if keep[t, e]:
                current[e] = 0 if ended[t, e] else current[e] + 1
    return depth, next_depth, current


@njit(cache=True, nogil=True)
def _broken_rows(depth, valid, newest_rows, envs, size):
    """FrameStore.broken_rows for stacks of ``size`` frames."""
    capacity = valid.shape[0]
    rows = np.empty(len(envs) * (size - 1), dtype=np.int64)
    cols = np.empty_like(rows)
    count = 0
    for i in range(len(envs)):
        env = envs[i]
        for offset in range(1, size):
            row = (newest_rows[i] + offset) % capacity
            if valid[row, env] and depth[row, env] >= offset:
                rows[count], cols[count] = row, env
                count += 1
    return rows[:count], cols[:count]


def frame_bytes(space: spaces.Box) -> int:
    """Bytes of one frame of a stacked observation space ``(k, *frame)``."""
    return int(np.prod(space.shape[1:], dtype=np.int64)) * np.dtype(space.dtype).itemsize


def step_counter_bytes(num_envs: int) -> int:
    """Bytes of a frame store's per-sub-env episode step counters (``episode_step``, int64)."""
    return num_envs * np.dtype(np.int64).itemsize
