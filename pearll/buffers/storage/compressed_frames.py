"""Frame stores whose frames are compressed losslessly, one at a time (``frame_compression=``).

A ReplayBuffer with frame stacks keeps one frame per row (:mod:`pearll.buffers.storage.frames`).
With ``frame_compression="lz4"`` (or ``"zstd"``) :class:`CompressedFrameStore` keeps each of
those frames compressed, as its own ``bytes`` object: preprocessed Atari frames (84x84 uint8)
shrink 4-30x, so a transition costs a few hundred bytes to 2 KB instead of 7 KB. Everything
else (depths, padding, exactness at wraparound, persistence) is the uncompressed store's.

- Writes compress each frame as it is stored (a few µs with lz4; zstd is ~2x slower and ~1.5x
  smaller). Reads decompress each distinct frame a batch needs once (a sample of B transitions
  needs about 5B distinct frames for its 2B stacks of 4), then gather the stacks from them.
- Memory: the compressed size is not known before the frames arrive. The memory check reserves
  :data:`RESERVED_FRACTION` of a raw frame per row, plus the per-frame object overhead; frames
  that compress worse than that make the buffer grow past its reservation (to at most the raw
  size plus the codec's small worst-case overhead). ``buffer.nbytes`` reports what the
  compressed frames take now. With ``storage="memmap"`` they stay in memory (only packed rows
  go to files).
- ``buffer.observations`` is a :class:`CompressedFrames` view: its shape and dtype are those of
  the uncompressed frames; indexing it decompresses the frames selected into a new array;
  assigning whole frames compresses them.
- Saving joins the compressed frames into one array (one extra copy of them while the save
  runs); loading splits it back into frames.

The codecs are optional dependencies (``pip install 'pearll[compress]'``), imported when a
buffer asks for them.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from pearll.buffers.checkpoint.protocol import AnyLength
from pearll.buffers.errors import CheckpointError
from pearll.buffers.storage.frames import FrameStackSpec, FrameStore

CODECS = ("lz4", "zstd")
ZSTD_LEVEL = 3  # zstd's default: levels 1-3 compress Atari frames within 3% of each other
# What the memory check reserves per frame, as a fraction of the raw frame. Measured with lz4 on
# preprocessed Atari frames (benchmarks/RESULTS_COMPRESSED.md): 1/28 (Pong) to 1/4 (MsPacman).
RESERVED_FRACTION = 1 / 3
# Frames a read decompresses into reused memory (per thread: 7 MB of 84x84 frames); reads of
# more (``all()``, ``np.asarray(view)``) get new memory.
SCRATCH_FRAMES = 1024
# Per stored frame: the bytes object's header and the list's pointer to it.
FRAME_OVERHEAD = sys.getsizeof(b"") + 8


class Codec:
    """A lossless byte codec by name (``"lz4"`` or ``"zstd"``); pickles as its name."""

    def __init__(self, name: str) -> None:
        self.name = name
        if name == "lz4":
            self.compress, self._decompressor = _lz4()
        elif name == "zstd":
            self.compress, self._decompressor = _zstd()
        else:
            raise ValueError(f"frame_compression: expected one of {CODECS} or None, got {name!r}")

    def decompressor(self, size: int) -> Callable[[bytes], bytes]:
        """Decompresses one blob that holds ``size`` bytes."""
        return self._decompressor(size)

    def __reduce__(self) -> tuple[Any, ...]:
        return Codec, (self.name,)


def resolve_codec(option: Any) -> Codec | None:
    """The Codec ``frame_compression=option`` asks for (None: frames stored uncompressed)."""
    if option is None:
        return None
    if not isinstance(option, str):
        raise TypeError(f"frame_compression: expected one of {CODECS} or None, got {option!r}")
    return Codec(option)


def _lz4() -> tuple[Callable[[Any], bytes], Callable[[int], Callable[[bytes], bytes]]]:
    try:
        import lz4.block
    except ImportError:
        raise ImportError(_missing("lz4", "lz4")) from None

    def compress(data: Any) -> bytes:
        return lz4.block.compress(data, store_size=False)  # the store knows the frame size

    def decompressor(size: int) -> Callable[[bytes], bytes]:
        return lambda blob: lz4.block.decompress(blob, uncompressed_size=size)

    return compress, decompressor


def _zstd() -> tuple[Callable[[Any], bytes], Callable[[int], Callable[[bytes], bytes]]]:
    try:
        import zstandard
    except ImportError:
        raise ImportError(_missing("zstd", "zstandard")) from None
    compressor = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    decompressor = zstandard.ZstdDecompressor()

    def compress(data: Any) -> bytes:
        # zstandard returns its worst-case-sized output shrunk in place, which leaves a hole in
        # the heap per frame (measured: 5.3 KB of RSS per 1.1 KB frame); an exact copy does not.
        return bytes(memoryview(compressor.compress(data)))

    return compress, lambda size: decompressor.decompress


def _missing(codec: str, package: str) -> str:
    return (
        f"frame_compression={codec!r} needs the {package} package, which is not installed: "
        f"pip install 'pearll[compress]' (or pip install {package})"
    )


class CompressedFrameStore(FrameStore):
    """A FrameStore whose frames are compressed blobs, one per (sub-env, row).

    ``frames`` is a list of ``E * capacity`` bytes objects, indexed ``env * capacity + row``
    like the uncompressed store's flat frames; rows never written share one blob (a zero frame).
    """

    def __init__(
        self, spec: FrameStackSpec, space: spaces.Box, capacity: int, num_envs: int, codec: Codec
    ) -> None:
        self.codec = codec
        self.frame_bytes = int(np.prod(space.shape[1:], dtype=np.int64)) * space.dtype.itemsize
        self._decompress = codec.decompressor(self.frame_bytes)
        self._local = threading.local()
        super().__init__(spec, space, capacity, num_envs)

    def _new_frames(self, zeros: Any) -> list[bytes]:
        zero_frame = self.codec.compress(np.zeros(self.frame_shape, self.dtype))
        return [zero_frame] * (self.num_envs * self.capacity)

    def restore(self, frames: list[bytes], episode_step: np.ndarray) -> None:
        self.frames, self.episode_step = frames, episode_step
        self.payload_bytes = sum(map(len, frames))
        self.view = CompressedFrames(self)

    def __getstate__(self) -> dict[str, Any]:
        skip = ("_decompress", "_local", "view")
        return {k: v for k, v in self.__dict__.items() if k not in skip}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._decompress = self.codec.decompressor(self.frame_bytes)
        self._local = threading.local()
        self.view = CompressedFrames(self)

    def state(self) -> dict[str, Any]:
        """The blobs joined into one uint8 array (any length), their lengths ``(E, capacity)``."""
        data = np.frombuffer(b"".join(self.frames), dtype=np.uint8)
        lengths = np.fromiter(map(len, self.frames), dtype=np.int64, count=len(self.frames))
        return {
            "data": data.view(AnyLength),
            "lengths": lengths.reshape(self.num_envs, self.capacity),
            "episode_step": self.episode_step,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        data, lengths = state["data"], state["lengths"].reshape(-1)
        if (lengths < 0).any() or int(lengths.sum()) != len(data):
            raise CheckpointError(
                f"state.frames: the frame lengths add up to {int(lengths.sum())} bytes, but "
                f"state.frames.data holds {len(data)}"
            )
        ends = np.cumsum(lengths).tolist()
        starts = [0, *ends[:-1]]
        frames = [data[a:b].tobytes() for a, b in zip(starts, ends, strict=True)]
        self.restore(frames, state["episode_step"])

    @staticmethod
    def required_bytes(space: spaces.Box, capacity: int, num_envs: int) -> int:
        frame = int(np.prod(space.shape[1:], dtype=np.int64)) * np.dtype(space.dtype).itemsize
        return num_envs * capacity * (int(frame * RESERVED_FRACTION) + FRAME_OVERHEAD)

    @property
    def nbytes(self) -> int:
        """The compressed frames (as if no row shared its blob) and their object overhead."""
        return self.payload_bytes + len(self.frames) * FRAME_OVERHEAD + self.episode_step.nbytes

    def take(self, flat: np.ndarray) -> np.ndarray:
        # Stacks overlap: each distinct frame is decompressed once, into scratch memory.
        distinct, inverse = np.unique(flat.reshape(-1), return_inverse=True)
        decoded = self._scratch(len(distinct))
        target, size = memoryview(decoded.reshape(-1)).cast("B"), self.frame_bytes
        frames, decompress = self.frames, self._decompress
        for start, i in zip(range(0, len(distinct) * size, size), distinct.tolist(), strict=True):
            target[start : start + size] = decompress(frames[i])
        return decoded.take(inverse, axis=0).reshape(*flat.shape, *self.frame_shape)

    def _scratch(self, count: int) -> np.ndarray:
        """``(count, *frame)`` memory to decompress into: for a sample's few hundred frames,
        this thread's reused array (fresh megabytes cost more in page faults than the
        decompression itself); for more, a new one."""
        if count > SCRATCH_FRAMES:
            return np.empty((count, *self.frame_shape), self.dtype)
        local = self._local
        if not hasattr(local, "scratch"):
            local.scratch = np.empty((SCRATCH_FRAMES, *self.frame_shape), self.dtype)
        return local.scratch[:count]

    def put(self, flat: np.ndarray, values: np.ndarray) -> None:
        """Compress ``values`` ``(N, *frame)`` into the frames at ``flat`` indices ``(N,)``."""
        values = np.ascontiguousarray(values, dtype=self.dtype)
        frames, compress = self.frames, self.codec.compress
        change = 0
        for i, value in zip(flat.tolist(), values, strict=True):
            blob = compress(value)
            change += len(blob) - len(frames[i])
            frames[i] = blob
        self.payload_bytes += change


class CompressedFrames:
    """The frames of a CompressedFrameStore seen as an array ``(capacity, E, *frame)``, or
    ``(capacity, *frame)`` for one sub-env's frames.

    Indexing follows numpy's rules (ints, slices, int and bool arrays; no Ellipsis or None) and
    decompresses the frames selected into a new array: ``view[key]`` equals
    ``np.asarray(view)[key]``, except that a key with an index array and with ints or arrays on
    both the row/sub-env axes and the frame axes is refused (IndexError).
    ``view[:, e]`` is sub-env ``e``'s view (nothing decompressed). Assignment compresses whole
    frames: ``view[rows, envs] = frames``. ``np.asarray(view)`` decompresses every frame.
    """

    def __init__(self, store: CompressedFrameStore, env: int | None = None) -> None:
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
