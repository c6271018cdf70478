"""TransitionStore: where a buffer's per-step bytes live, as one part with a state of its own.

It puts together what a buffer stores per step: the packed rows of every field
(:class:`~pearll.buffers.storage.packed.PackedStorage`), the frame store of frame-stacked
observations (plain or compressed, or none: :class:`FrameOptions`), and where both are placed
(memory or memory-mapped files: :class:`Placement`). Buffers read and write through its
``fields`` (per-field views ``(capacity, E, ...)``), ``packed`` and ``frames``.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
from gymnasium import spaces

from pearll.buffers.storage.frame_options import FrameOptions
from pearll.buffers.storage.packed import PackedStorage, required_bytes
from pearll.buffers.storage.placement import Placement
from pearll.common.tree import tree_map


class TransitionStore:
    """The stored fields of ``capacity`` rows per sub-env, allocated zeroed by :meth:`allocate`.

    Args:
        specs: name -> FieldSpec tree of every per-step field (observations whole, as the env
            gives them: the frame options take the frames out of the packed rows).
        frames: the frame-stack options (``FrameOptions(None, None)``: observations whole).
        observation_space: the env's single observation space (the frames' shape and dtype).
        capacity, num_envs: rows per sub-env and sub-envs.
        spare_rows: the ReplayBuffer layout (a transition's next observation is the next row's
            observation): the packed rows then keep a copy of row 0 after the last row, so a
            row and the row after read as one record (not with frames, which live apart).
        placement: memory or memmap files for the bulk arrays.

    Nothing is allocated until :meth:`allocate`, so :attr:`required_bytes` can be checked first.
    """

    def __init__(
        self,
        specs: dict[str, Any],
        frames: FrameOptions,
        observation_space: spaces.Space,
        capacity: int,
        num_envs: int,
        spare_rows: bool,
        placement: Placement,
    ) -> None:
        self.specs, self.options, self.placement = specs, frames, placement
        self.capacity, self.num_envs = capacity, num_envs
        self._space = observation_space
        self.stored_specs = frames.stored_specs(specs)
        self.mirror = spare_rows and frames.spec is None
        self.packed: PackedStorage | None = None
        self.frames: Any = None
        self.fields: dict[str, Any] = {}

    @property
    def required_bytes(self) -> int:
        """Bytes :meth:`allocate` will claim, padding included (memory and files)."""
        frames = self.options.frame_bytes(self._space, self.capacity, self.num_envs)
        return self._packed_bytes() + frames

    @property
    def bulk_bytes(self) -> int:
        """The part of :attr:`required_bytes` that ``storage="memmap"`` puts in files."""
        frames = self.options.placed_bytes(self._space, self.capacity, self.num_envs)
        return self._packed_bytes() + frames

    def _packed_bytes(self) -> int:
        return required_bytes(self.stored_specs, self.capacity, self.num_envs, self.mirror)

    def allocate(self, packed: np.ndarray | None = None) -> None:
        """Fresh zeroed arrays (the packed rows from ``packed`` if given: a loaded array)."""
        self.frames = self.options.make_store(
            self._space, self.capacity, self.num_envs, self.placement
        )
        self.packed = PackedStorage(
            self.stored_specs, self.capacity, self.num_envs, self.mirror, packed=packed,
            zeros=functools.partial(self.placement.zeros, "packed"),
        )  # fmt: skip
        self._build_fields()

    def _build_fields(self) -> None:
        fields = dict(self.packed.fields)
        if self.frames is not None:
            fields["observations"] = self.frames.view
        self.fields = fields

    # --- the part protocol (pearll/buffers/core/part.py) ------------------------------------

    @property
    def nbytes(self) -> int:
        frames = self.frames.nbytes if self.frames is not None else 0
        return self.packed.nbytes + frames

    def reset(self) -> None:
        self.allocate()

    def state(self) -> dict[str, Any]:
        """``storage.packed``: the packed rows ``(E, rows, row_bytes)`` uint8 (see packed.py);
        ``storage.layout``: where each field lives in a row (offset, dtype, shape), so the
        fields can be read back without pearll; ``frames``: the frame store's own state."""
        layout = {
            name: tree_map(lambda s: {"offset": s.offset, "dtype": s.dtype.str,
                                      "shape": list(s.shape)}, slot)
            for name, slot in self.packed.slots.items()
        }  # fmt: skip
        state: dict[str, Any] = {"storage": {"packed": self.packed.packed, "layout": layout}}
        if self.frames is not None:
            state["frames"] = self.frames.state()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        self.allocate(state["storage"]["packed"])
        if self.frames is not None:
            self.frames.set_state(state["frames"])
            self._build_fields()

    def __getstate__(self) -> dict[str, Any]:
        # The field views would be pickled as arrays of their own: rebuilt from what they view.
        return {k: v for k, v in self.__dict__.items() if k != "fields"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._build_fields()
