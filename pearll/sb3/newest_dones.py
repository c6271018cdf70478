"""SB3's ``replay_buffer.dones``, kept only for what SB3 writes into it.

SB3 marks the newest step of a memory-saving buffer done before a second ``learn()``
(``replay_buffer.dones[(pos - 1) % buffer_size] = True``). The adapter stores its done flags in
the pearll buffer, so this array is there to receive that write; it notes that a write happened,
so that ``add`` checks one attribute per step instead of reading a row.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class NewestDones(np.ndarray):
    """A zeroed ``(per_env, n_envs)`` float32 array whose item assignments (also through views
    of it) set ``written`` and turn off the fast path of ``owner.add`` (``owner._fast``)."""

    written = False
    owner: Any = None

    def __new__(cls, shape: tuple[int, int], owner: Any = None) -> NewestDones:
        # It owns its memory, so that every view of it has it as its base.
        dones = super().__new__(cls, shape, dtype=np.float32)
        dones.view(np.ndarray).fill(0)
        dones.owner = owner
        return dones

    @classmethod
    def from_array(cls, array: np.ndarray, owner: Any = None) -> NewestDones:
        """A NewestDones holding ``array`` (after unpickling, which drops the flag), ``written``
        if any value is set."""
        array = np.asarray(array, dtype=np.float32)
        dones = cls(array.shape, owner)
        dones.view(np.ndarray)[...] = array
        dones.written = bool(np.count_nonzero(array))
        return dones

    def __setitem__(self, key: Any, value: Any) -> None:
        super().__setitem__(key, value)
        root = self.base if isinstance(self.base, NewestDones) else self
        root.written = True
        if root.owner is not None:
            root.owner._fast = False

    def take_newest(self, pos: int) -> np.ndarray:
        """``(n_envs,)`` bool: the marks at the newest position ``pos - 1`` (SB3's
        ``(pos - 1) % buffer_size``); then every mark is cleared."""
        marked = np.asarray(self[pos - 1]) != 0
        self.view(np.ndarray).fill(0)
        self.written = False
        return marked
