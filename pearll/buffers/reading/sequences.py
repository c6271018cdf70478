"""Reading sequence windows: the ``(E, B, T)`` rows a sequence sampler chose, gathered.

Each real step is read as :class:`~pearll.buffers.reading.gather.Reader` reads a transition
(so frame stacks are rebuilt exactly as ``sample`` rebuilds them, and a step's next
observation is the observation after it, its episode's true final observation at an episode
end); padding steps read a stored row and are then zeroed, so padding is always zeros and
never data from elsewhere in the ring.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pearll.buffers.reading.gather import Reader, env_column
from pearll.common.tree import tree_map


def gather_windows(
    reader: Reader,
    rows: np.ndarray,
    is_first: np.ndarray,
    anchors: np.ndarray,
    burn_in: int,
    num_envs: int,
    envs: np.ndarray | None = None,
) -> dict[str, Any]:
    """The fields of the windows at ``rows`` (E, B, T) (-1: padding), ``(E, B, T, ...)``
    each, and the masks; ``is_first`` (E, B, T) bool comes with the rows (see
    sampling/sequences.py). ``anchors`` (E, B): each window's anchor row (read in place of
    padding before zeroing). ``envs`` (E,) int64: the sub-env of each leading index
    (default: sub-env e at index e; pooled windows pass one window per index).
    Returns the stored fields (``truncateds`` among them), ``mask``, ``learn_mask`` (float32,
    (E, B, T)), ``is_first`` (bool, (E, B, T)) and ``indices`` (int64, (E, B): the anchors'
    slots, ``row * num_envs + env``).
    """
    mask = rows >= 0
    shape = rows.shape
    # Padding reads the window's anchor (a stored row), to be zeroed below.
    safe = np.where(mask, rows, anchors[:, :, None]).reshape(shape[0], -1)
    columns = env_column(num_envs, envs) if num_envs > 1 else None
    fields = reader.gather(safe, envs)
    fields |= reader.packed.gather(safe, columns, ("truncateds",), False)
    padding = ~mask

    def shaped(array: np.ndarray) -> np.ndarray:
        # A fresh contiguous array (gathered fields may be strided views of one block).
        out = np.ascontiguousarray(array).reshape((*shape, *array.shape[2:]))
        out[padding] = 0
        return out

    fields = {name: tree_map(shaped, value) for name, value in fields.items()}
    float_mask = mask.astype(np.float32)
    learn_mask = float_mask.copy()
    learn_mask[:, :, :burn_in] = 0.0
    env_of = np.arange(num_envs) if envs is None else np.asarray(envs)
    slots = anchors * num_envs + env_of[:, None] if num_envs > 1 else anchors
    return fields | {
        "mask": float_mask,
        "learn_mask": learn_mask,
        "is_first": is_first,
        "indices": slots.astype(np.int64),
    }
