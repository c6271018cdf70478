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
        store, control, last = self._store, self._control, self._last
        capacity, compress, dtype = self._capacity, self._compress, self._dtype
        rows = control[self._rows_at : self._rows_at + written].tolist()
        envs = control[self._envs_at : self._envs_at + written].tolist()
        change = 0
        for row, env in zip(rows, envs, strict=True):
            if self._vector:
                frame, next_frame = obs[env, -1], next_obs[env, -1]
            else:
                frame, next_frame = obs[-1], next_obs[-1]
            if frame.dtype != dtype:  # the same cast as the general path's (an exact one)
                frame = frame.astype(dtype)
            if next_frame.dtype != dtype:
                next_frame = next_frame.astype(dtype)
            frames = store.frames  # (a load gives the store a new list)
            at = env * capacity + row
            raw, kept = frame.tobytes(), last[env]
            if kept is None or frames[at] is not kept[0] or raw != kept[1]:
                blob = compress(raw)
                change += len(blob) - len(frames[at])
                frames[at] = blob
            next_at = at + 1 if row + 1 < capacity else env * capacity
            next_raw = next_frame.tobytes()
            blob = compress(next_raw)
            change += len(blob) - len(frames[next_at])
            frames[next_at] = blob
            last[env] = (blob, next_raw)
        store.payload_bytes += change  # what buffer.nbytes reports, as CompressedFrameStore.put
