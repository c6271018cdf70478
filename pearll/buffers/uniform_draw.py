"""ReplayBuffer.sample's hot path: uniform draws fused with the copy of the rows drawn.

A uniform sample needs, per sub-env, row indices drawn uniformly among the rows that hold a
transition (rejection: draw among the rows in use, keep the valid ones), then each row's
packed bytes and the next row's (whose observations are the transition's next observations).
In numpy that is a dozen calls of fixed overhead, more than the data movement itself for a
batch of 256 small transitions. Here numpy draws the uniform numbers (so the buffer's
Generator, and its seed, drive the sample) and one compiled loop turns them into rows, rejects
the invalid ones and copies each accepted row pair as 8-byte words into the output records.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from pearll.buffers.ring import Ring
from pearll.buffers.storage import PackedStorage


def draw_pairs(
    rng: np.random.Generator, ring: Ring, storage: PackedStorage, batch_size: int
) -> np.ndarray:
    """``(E * batch_size,)`` records of ``storage.pair_dtype``, sub-env by sub-env.

    Each sub-env's ``batch_size`` transitions are drawn uniformly, with replacement, among its
    stored ones. Raises RuntimeError (see :meth:`Ring.require_transitions`) if a sub-env holds
    none. The storage must have the mirror row (the ReplayBuffer layout).
    """
    ring.require_transitions()
    num_envs = ring.num_envs
    records = np.empty(num_envs * batch_size, dtype=storage.pair_dtype)
    filled = np.zeros(num_envs, dtype=np.int64)
    # A few spare draws make one round enough unless many rows in use are invalid.
    draws = batch_size + batch_size // 8 + 8
    full = False
    while not full:
        full = _copy_drawn_pairs(
            rng.random(num_envs * draws), ring.valid, ring.size, storage.words,
            storage.capacity + 1, records.view(np.uint64), filled,
        )  # fmt: skip
    return records


@njit(cache=True, nogil=True)
def _copy_drawn_pairs(uniforms, valid, size, rows, env_stride, out, filled):
    """Fill sub-env e's records from its uniform draws; True once every sub-env's are full.

    ``uniforms`` (E * D,) floats in [0, 1), D per sub-env; ``valid`` (capacity, E); ``rows``
    (E * env_stride, W) the packed rows as words, sub-env e's row r at ``e * env_stride + r``;
    ``out`` (E * B * 2W,) the records as words, sub-env by sub-env; ``filled`` (E,) how many of
    its B records each sub-env has filled (updated). The valid draws, in order, are i.i.d.
    uniform over the valid rows, so taking the first B is a uniform sample.
    """
    num_envs, width = len(filled), rows.shape[1]
    batch = len(out) // (num_envs * 2 * width)
    draws = len(uniforms) // num_envs
    full = True
    for env in range(num_envs):
        high, k, j = size[env], filled[env], env * draws
        while k < batch and j < (env + 1) * draws:
            row = int(uniforms[j] * high)
            j += 1
            if valid[row, env]:
                source, target = env * env_stride + row, (env * batch + k) * 2 * width
                for w in range(width):
                    out[target + w] = rows[source, w]
                    out[target + width + w] = rows[source + 1, w]
                k += 1
        filled[env] = k
        full = full and k == batch
    return full
