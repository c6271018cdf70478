"""What a buffer remembers of the sequence windows it handed out, so that updates sent back
later (sequence priorities, stored-state write-back) refer to the steps that were sampled.

Per anchor slot ``(row, env)``: when its window was last sampled (a write clock), and its
extent then: the window's ``burn_in`` and ``length`` (its layout), how many of its burn-in
and learned steps were real, and its boundary. A write observer stamps every slot each add
overwrites with the clock, so a slot still holds what was sampled iff its stamp is not newer
than the window's. The memory is made on the first ``sample_sequences`` call (a buffer that
never samples sequences pays nothing on its adds) and forgotten by ``reset`` and ``load``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pearll.buffers.sampling.sequences import Windows

# A slot's last sampled window: when (write clock), its layout (burn_in, length, boundary) and
# how many of its burn-in and learned steps were real. 32 bytes, aligned.
WINDOW_RECORD = np.dtype(
    [("sampled_at", np.int64), ("burn_in", np.int32), ("length", np.int32),
     ("burn", np.int32), ("learned", np.int32), ("cross", np.bool_)],
    align=True,
)  # fmt: skip


class WindowMemory:
    """Each anchor slot's last sampled window, and each slot's last write (see the module)."""

    def __init__(self, capacity: int, num_envs: int) -> None:
        shape = (capacity, num_envs)
        self.clock = 0
        self.stamps = np.zeros(shape, dtype=np.int64)  # clock of each slot's last overwrite
        # One record per slot, so remembering a window writes one cache line, not one per
        # field; written through at allocation, so that no sample pays a first-touch page
        # fault on it (random slots of a large buffer would, call after call).
        self.records = np.empty(shape, dtype=WINDOW_RECORD)
        self.records.fill(np.array((-1, 0, 0, 0, 0, False), dtype=WINDOW_RECORD))

    @property
    def nbytes(self) -> int:
        return self.stamps.nbytes + self.records.nbytes

    # Field views of the records, each (capacity, E).
    @property
    def sampled_at(self) -> np.ndarray:  # clock when last sampled; -1: never an anchor
        return self.records["sampled_at"]

    @property
    def burn_in(self) -> np.ndarray:
        return self.records["burn_in"]

    @property
    def length(self) -> np.ndarray:
        return self.records["length"]

    @property
    def burn(self) -> np.ndarray:
        return self.records["burn"]

    @property
    def learned(self) -> np.ndarray:
        return self.records["learned"]

    @property
    def cross(self) -> np.ndarray:
        return self.records["cross"]

    def written(self, written: Any) -> None:
        """The write observer: the slots an add passed over are stamped with a new clock."""
        self.clock += 1
        self.stamps[written.passed_rows, written.passed_envs] = self.clock

    def remember(
        self,
        anchors: np.ndarray,
        windows: Windows,
        burn_in: int,
        length: int,
        cross: bool,
        envs: np.ndarray | None = None,
    ) -> None:
        """Record the windows just sampled at ``anchors`` (E, B): window ``[e, b]`` of sub-env
        ``envs[e]`` (default: sub-env e)."""
        envs = np.arange(anchors.shape[0]) if envs is None else np.asarray(envs)
        envs = np.broadcast_to(envs[:, None], anchors.shape)
        new = np.empty(anchors.shape, dtype=WINDOW_RECORD)
        new["sampled_at"], new["burn_in"], new["length"], new["cross"] = (
            self.clock,
            burn_in,
            length,
            cross,
        )
        new["burn"], new["learned"] = windows.burn, windows.learned
        self.records[anchors, envs] = new

    def known(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        """Whether each slot was ever an anchor."""
        return self.sampled_at[rows, envs] >= 0

    def intact(self, rows: np.ndarray, envs: np.ndarray, sampled_at: np.ndarray) -> np.ndarray:
        """Whether each slot still holds what it held at clock ``sampled_at``."""
        return self.stamps[rows, envs] <= sampled_at


def sequence_priorities(td_errors: np.ndarray, learned: np.ndarray, eta: float) -> np.ndarray:
    """R2D2's sequence priority ``eta * max + (1 - eta) * mean`` of ``|td|`` over each window's
    real learned steps: ``td_errors`` (N, length), ``learned`` (N,) real steps (a prefix)."""
    magnitude = np.abs(td_errors.astype(np.float64))
    real = np.arange(td_errors.shape[1])[None, :] < learned[:, None]
    largest = np.where(real, magnitude, 0.0).max(axis=1)
    mean = np.where(real, magnitude, 0.0).sum(axis=1) / np.maximum(learned, 1)
    return eta * largest + (1.0 - eta) * mean
