"""The frames of one env step put into a compressed frame store (the step writer's part).

Between the step's two compiled calls (step_invalidate.py explains them) the step writer calls
:meth:`CompressedStepFrames.put`, which stores what the general path's write stores for the
step: for each slot ``(row, env)`` written, the observation's newest frame compressed at
``row`` and the next observation's at the row after it, as ``bytes`` in the store's list.

One frame a step, in the common case. A step's observation is the previous step's next
observation, whose newest frame is already stored, compressed, at this step's row. Each
sub-env remembers the last next frame it put: the blob object and the raw bytes it was
compressed from. If the blob at this step's row is that very object and the observation's
frame has those raw bytes, the row already holds what compressing the frame would give (the
codecs are deterministic), and it is left alone. Only the identity of the blob makes the
shortcut safe: any other write of the row (the general path, a load, ``observations[...] =``)
puts a new object there. The pair is replaced in one assignment, so it always matches.
"""

from __future__ import annotations

from typing import Any

import numpy as np


class CompressedStepFrames:
    """Puts one step's frames into ``store`` (a CompressedFrameStore) at the slots listed in
    ``control`` at ``rows_at`` (rows) and ``rows_at + E`` (their sub-envs)."""

    def __init__(self, store: Any, control: np.ndarray, rows_at: int, vector: bool) -> None:
        self._store, self._control, self._vector = store, control, vector
        self._compress = store.codec.compress
        self._dtype, self._capacity = store.dtype, store.capacity
        self._rows_at, self._envs_at = rows_at, rows_at + store.num_envs
        # Per sub-env: (blob, raw bytes) of the last next frame put, or None.
        self._last: list[tuple[bytes, bytes] | None] = [None] * store.num_envs

    def put(self, written: int, obs: np.ndarray, next_obs: np.ndarray) -> None:
        """Store the newest frames of ``obs`` and ``next_obs`` (``(E, k, *frame)``, or
        ``(k, *frame)`` for a single env) of the ``written`` slots listed."""
        dtype = self._dtype
        if obs.dtype is not dtype and obs.dtype != dtype:  # an exact cast, as the general path's
            obs = obs.astype(dtype)
        if next_obs.dtype is not dtype and next_obs.dtype != dtype:
            next_obs = next_obs.astype(dtype)
        store, control, last, compress = self._store, self._control, self._last, self._compress
        capacity, rows_at, envs_at = self._capacity, self._rows_at, self._envs_at
        frames = store.frames  # (read at each add: a load gives the store a new list)
        change = 0
        for i in range(written):
            row = control.item(rows_at + i)
            if self._vector:
                env = control.item(envs_at + i)
                frame, next_frame = obs[env, -1], next_obs[env, -1]
            else:
                env, frame, next_frame = 0, obs[-1], next_obs[-1]
            at, kept = env * capacity + row, last[env]
            # The frame is compared in place (bytes.startswith reads any C-contiguous buffer;
            # both are one frame long): the common case copies and compresses no frame.
            if kept is None or frames[at] is not kept[0] or not _same(kept[1], frame):
                blob = compress(frame.tobytes())
                change += len(blob) - len(frames[at])
                frames[at] = blob
            next_at = at + 1 if row + 1 < capacity else env * capacity
            raw = next_frame.tobytes()
            blob = compress(raw)
            change += len(blob) - len(frames[next_at])
            frames[next_at] = blob
            last[env] = (blob, raw)
        store.payload_bytes += change  # what buffer.nbytes reports, as CompressedFrameStore.put


def _same(raw: bytes, frame: np.ndarray) -> bool:
    """Whether ``frame``'s bytes (C order) are ``raw``, of the same length."""
    try:
        return raw.startswith(memoryview(frame).cast("B"))
    except TypeError:  # not C-contiguous: no flat view of it
        return raw == frame.tobytes()
