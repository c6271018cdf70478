"""The array view of a compressed frame store (``buffer.observations`` with compressed frames)."""

from __future__ import annotations

from typing import Any

import numpy as np


class CompressedFrames:
    """The frames of a CompressedFrameStore (``store``) seen as an array
    ``(capacity, E, *frame)``, or ``(capacity, *frame)`` for one sub-env's frames.

    Indexing follows numpy's rules (ints, slices, int and bool arrays; no Ellipsis or None) and
    decompresses the frames selected into a new array: ``view[key]`` equals
    ``np.asarray(view)[key]``, except that a key with an index array and with ints or arrays on
    both the row/sub-env axes and the frame axes is refused (IndexError).
    ``view[:, e]`` is sub-env ``e``'s view (nothing decompressed). Assignment compresses whole
    frames: ``view[rows, envs] = frames``. ``np.asarray(view)`` decompresses every frame.
    """

    def __init__(self, store: Any, env: int | None = None) -> None:
        self._store, self._env = store, env
        lead = (store.capacity,) if env is not None else (store.capacity, store.num_envs)
        self.shape = (*lead, *store.frame_shape)
        self.dtype = store.dtype
        self.ndim = len(self.shape)

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"CompressedFrames(shape={self.shape}, dtype={self.dtype}, {self._store.codec.name})"

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        frames = self[:]
        return frames if dtype is None else frames.astype(dtype, copy=False)

    def __getitem__(self, key: Any) -> Any:
        if self._env is None and _is_env_selection(key):
            env = int(np.arange(self._store.num_envs)[key[1]])  # IndexError when out of range
            return CompressedFrames(self._store, env)
        flat, rest = self._flat(key)
        frames = self._store.take(flat)
        return frames[(slice(None),) * flat.ndim + rest] if rest else frames

    def __setitem__(self, key: Any, values: Any) -> None:
        flat, rest = self._flat(key)
        if rest:
            raise IndexError(
                "compressed frames are replaced whole: index rows (and sub-envs) only, got "
                f"{len(rest)} index(es) into the frame axes"
            )
        shape = (*flat.shape, *self._store.frame_shape)
        if not (isinstance(values, np.ndarray) and values.shape == shape):
            values = np.broadcast_to(np.asarray(values, self.dtype), shape)
        self._store.put(flat.reshape(-1), values.reshape(-1, *self._store.frame_shape))

    def _flat(self, key: Any) -> tuple[np.ndarray, tuple[Any, ...]]:
        """The flat frame indices ``key`` selects (numpy's shape) and its frame-axis part."""
        key = key if isinstance(key, tuple) else (key,)
        if any(k is Ellipsis or k is None for k in key):
            raise IndexError("CompressedFrames: Ellipsis and None (newaxis) are not supported")
        store = self._store
        lead = 1 if self._env is not None else 2
        head, rest = key[:lead], key[lead:]
        if _mixes_advanced_indexes(head, rest):
            raise IndexError(
                "CompressedFrames: an index array with ints or arrays on both the row/sub-env "
                "axes and the frame axes (numpy would move the axes) is not supported: index "
                "the frames first, then the result"
            )
        if self._env is not None:
            return self._env * store.capacity + np.arange(store.capacity)[head], rest
        if _in_range_pairs(head, store.capacity, store.num_envs):  # how the buffer writes
            return head[1] * store.capacity + head[0], rest
        rows = np.arange(store.capacity)[:, None]
        envs = np.arange(store.num_envs)[None, :]
        grid = (store.capacity, store.num_envs)
        return (
            np.broadcast_to(envs, grid)[head] * store.capacity + np.broadcast_to(rows, grid)[head],
            rest,
        )


def _in_range_pairs(head: tuple[Any, ...], capacity: int, num_envs: int) -> bool:
    """Whether ``head`` is (rows, envs): int arrays of one shape, every index in range."""
    if len(head) != 2 or not all(isinstance(k, np.ndarray) and k.dtype.kind in "iu" for k in head):
        return False
    rows, envs = head
    return (
        rows.shape == envs.shape
        and bool(((rows >= 0) & (rows < capacity)).all())
        and bool(((envs >= 0) & (envs < num_envs)).all())
    )


def _mixes_advanced_indexes(head: tuple[Any, ...], rest: tuple[Any, ...]) -> bool:
    """Whether numpy's advanced indexing would order ``head + rest``'s axes unlike indexing
    with ``head`` then with ``rest`` (possible only with arrays, and ints or arrays on both)."""
    has_array = any(not isinstance(k, slice | int | np.integer) for k in (*head, *rest))
    return (
        has_array
        and any(not isinstance(k, slice) for k in head)
        and any(not isinstance(k, slice) for k in rest)
    )


def _is_env_selection(key: Any) -> bool:
    """Whether ``key`` is ``(:, e)`` with an int ``e``."""
    return (
        isinstance(key, tuple)
        and len(key) == 2
        and isinstance(key[0], slice)
        and key[0] == slice(None)
        and isinstance(key[1], int | np.integer)
        and not isinstance(key[1], bool)
    )
