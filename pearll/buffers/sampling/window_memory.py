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


class WindowMemory:
    """Each anchor slot's last sampled window, and each slot's last write (see the module)."""

    def __init__(self, capacity: int, num_envs: int) -> None:
        shape = (capacity, num_envs)
        self.clock = 0
        self.stamps = np.zeros(shape, dtype=np.int64)  # clock of each slot's last overwrite
        self.sampled_at = np.full(shape, -1, dtype=np.int64)  # -1: never an anchor
        self.burn_in = np.zeros(shape, dtype=np.int64)
        self.length = np.zeros(shape, dtype=np.int64)
        self.burn = np.zeros(shape, dtype=np.int64)
        self.learned = np.zeros(shape, dtype=np.int64)
        self.cross = np.zeros(shape, dtype=bool)

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
        at = (anchors, envs)
        self.sampled_at[at] = self.clock
        self.burn_in[at], self.length[at], self.cross[at] = burn_in, length, cross
        self.burn[at], self.learned[at] = windows.burn, windows.learned

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
