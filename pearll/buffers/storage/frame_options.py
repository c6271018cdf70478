"""What a buffer's frame-stack options mean for its storage: the frame store to build (plain,
compressed or none), the fields its packed rows keep, and the bytes it needs."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from pearll.buffers.core.spaces import FieldSpec
from pearll.buffers.storage.compressed_frames import CompressedFrameStore, resolve_codec
from pearll.buffers.storage.frames import FrameStackSpec, FrameStore, resolve_frame_stack
from pearll.buffers.storage.placement import Placement


@dataclass(frozen=True)
class FrameOptions:
    """A buffer's frame stacks: ``spec`` (None: observations stored whole) and ``codec``."""

    spec: FrameStackSpec | None
    codec: Any

    @classmethod
    def of(
        cls,
        env: Any,
        frame_stack: Any,
        frame_compression: str | None,
        space: spaces.Space,
        spare_rows: bool,
        owner: str,
    ) -> FrameOptions:
        """The options a buffer class ``owner`` was given, checked against what it supports."""
        spec = resolve_frame_stack(env, frame_stack, space)
        if spec is not None and not spare_rows:
            raise ValueError(f"frame_stack: not supported by {owner}")
        if spec is None and frame_compression is not None:
            raise ValueError(
                f"frame_compression={frame_compression!r}: compresses the frames of frame-stacked "
                "observations, and this buffer has none (frame_stack=None, or no "
                "FrameStackObservation detected): declare frame_stack=k or drop the option"
            )
        return cls(spec, resolve_codec(frame_compression))

    def stored_specs(self, specs: dict[str, Any]) -> dict[str, Any]:
        """The fields packed rows keep: with frames, how deep each row's stack reaches back
        instead of its observation (the frames live in the frame store)."""
        if self.spec is None:
            return specs
        stored = {name: spec for name, spec in specs.items() if name != "observations"}
        return stored | {"frame_depth": FieldSpec((), np.dtype(np.uint8))}

    def frame_bytes(self, space: spaces.Space, capacity: int, num_envs: int) -> int:
        """Bytes of the frame store (0 without frames)."""
        if self.spec is None:
            return 0
        store = FrameStore if self.codec is None else CompressedFrameStore
        return store.required_bytes(space, capacity, num_envs)

    def placed_bytes(self, space: spaces.Space, capacity: int, num_envs: int) -> int:
        """The part of :meth:`frame_bytes` that ``storage="memmap"`` puts in files: compressed
        frames stay in memory whatever the storage (see compressed_frames.py)."""
        return self.frame_bytes(space, capacity, num_envs) if self.codec is None else 0

    def make_store(
        self, space: spaces.Space, capacity: int, num_envs: int, placement: Placement
    ) -> Any:
        """A new, empty frame store, or None without frames."""
        if self.spec is None:
            return None
        if self.codec is not None:
            return CompressedFrameStore(self.spec, space, capacity, num_envs, self.codec)
        zeros = functools.partial(placement.zeros, "frames")
        return FrameStore(self.spec, space, capacity, num_envs, zeros)
