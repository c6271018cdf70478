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
buffer asks for them (codecs.py); the view is compressed_view.py. One env step at a time, the
step writer compresses the new frames itself (writing/compressed_step.py) and stores them here.
"""

from __future__ import annotations

import sys
import threading
from typing import Any

import numpy as np
from gymnasium import spaces

from pearll.buffers.checkpoint.protocol import AnyLength
from pearll.buffers.errors import CheckpointError
from pearll.buffers.storage.codecs import CODECS, Codec, resolve_codec
from pearll.buffers.storage.compressed_view import CompressedFrames
from pearll.buffers.storage.frames import (
    FrameStackSpec,
    FrameStore,
    frame_bytes,
    step_counter_bytes,
)

# Re-exported: this module is where the documentation points for all of it.
__all__ = ["CODECS", "Codec", "CompressedFrameStore", "CompressedFrames", "resolve_codec"]

# What the memory check reserves per frame, as a fraction of the raw frame. Measured with lz4 on
# preprocessed Atari frames (benchmarks/RESULTS_COMPRESSED.md): 1/28 (Pong) to 1/4 (MsPacman).
RESERVED_FRACTION = 1 / 3
# Frames a read decompresses into reused memory (per thread: 7 MB of 84x84 frames); reads of
# more (``all()``, ``np.asarray(view)``) get new memory.
SCRATCH_FRAMES = 1024
# Per stored frame: the bytes object's header and the list's pointer to it.
FRAME_OVERHEAD = sys.getsizeof(b"") + 8


class CompressedFrameStore(FrameStore):
    """A FrameStore whose frames are compressed blobs, one per (sub-env, row).

    ``frames`` is a list of ``E * capacity`` bytes objects, indexed ``env * capacity + row``
    like the uncompressed store's flat frames; rows never written share one blob (a zero frame).
    """

    def __init__(
        self, spec: FrameStackSpec, space: spaces.Box, capacity: int, num_envs: int, codec: Codec
    ) -> None:
        self.codec = codec
        self.frame_bytes = frame_bytes(space)
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
        reserved = int(frame_bytes(space) * RESERVED_FRACTION) + FRAME_OVERHEAD
        return num_envs * capacity * reserved + step_counter_bytes(num_envs)

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
