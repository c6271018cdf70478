"""Stored-state write-back: values for the steps of sampled windows, written where those steps
still are (see sampling/window_memory.py for what is remembered of each window)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from pearll.buffers.sampling.sequences import Windows
from pearll.buffers.sampling.window_memory import WindowMemory


def write_window_extras(
    field: np.ndarray,
    memory: WindowMemory,
    rows: np.ndarray,
    envs: np.ndarray,
    values: np.ndarray,
    windows_at: Callable[[np.ndarray, int, int, str], Windows],
) -> None:
    """Write ``values[i, t]`` into ``field`` (capacity, E, ...) at step t of the window anchored
    at slot ``(rows[i], envs[i])`` as it was sampled.

    A window whose anchor was overwritten since is skipped. Otherwise its steps are found by
    working the window out again from its anchor (``windows_at``: (1, N) anchor rows, length,
    burn_in, boundary -> Windows; the learned steps are newer than the anchor, so they are all
    still there) and cutting it to its extent as sampled; a burn-in step overwritten since is
    skipped. Only the window's own sub-env column is written (windows_at is asked for all
    sub-envs' rows at once, so each window is worked out in its own sub-env).
    """
    sampled_at = memory.sampled_at[rows, envs]
    keep = memory.intact(rows, envs, sampled_at)
    layouts = np.stack([memory.burn_in[rows, envs], memory.length[rows, envs],
                        memory.cross[rows, envs]], axis=1)  # fmt: skip
    for burn_in, length, cross in {tuple(layout) for layout in layouts[keep].tolist()}:
        group = keep & (layouts == (burn_in, length, cross)).all(axis=1)
        g_rows, g_envs, g_values = rows[group], envs[group], values[group]
        num_envs = field.shape[1]
        # One (E, N) call: row e holds this group's anchors where they are of sub-env e, and
        # row 0 elsewhere (worked out too, in sub-env e, and dropped).
        anchors = np.where(g_envs[None, :] == np.arange(num_envs)[:, None], g_rows[None, :], 0)
        now = windows_at(anchors, int(length), int(burn_in), "cross" if cross else "pad")
        window_rows = now.rows[g_envs, np.arange(len(g_rows))]
        t = np.arange(burn_in + length)[None, :]
        first = burn_in - memory.burn[g_rows, g_envs][:, None]
        last = burn_in + memory.learned[g_rows, g_envs][:, None]
        i, t = np.nonzero((window_rows >= 0) & (t >= first) & (t < last))
        target_rows, target_envs = window_rows[i, t], g_envs[i]
        fresh = memory.intact(target_rows, target_envs, sampled_at[group][i])
        field[target_rows[fresh], target_envs[fresh]] = g_values[i[fresh], t[fresh]]
