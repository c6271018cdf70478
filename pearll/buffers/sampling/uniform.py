"""Uniform draws of stored transitions, and ReplayBuffer.sample's hot path: draws fused with
the copy of the rows drawn.

A uniform sample needs, per sub-env, row indices drawn uniformly among the rows that hold a
transition (rejection: draw among the rows in use, keep the valid ones), then each row's
packed bytes and the next row's (whose observations are the transition's next observations).
In numpy that is a dozen calls of fixed overhead, more than the data movement itself for a
batch of 256 small transitions. Here one compiled loop draws the rows, rejects the invalid ones
and copies each accepted row pair as 8-byte words into the output records. It draws a block
of rows and prefetches them all before copying any (:mod:`pearll.buffers.sampling.prefetch`): random
rows of a large buffer come from memory, and fetched together they cost little more than one
(measured: sample(256) of 100k CartPole transitions, interleaved with other buffers as in
``benchmarks.bench_buffers``, 20-21 µs without, 13.5 µs with).

The draws come from SplitMix64 (Steele, Lea & Flood, 2014; it passes BigCrush) seeded with one
64-bit word from the buffer's numpy Generator per call, so the buffer's seed still fixes every
sample, and a call costs one word of the Generator's stream instead of an array of doubles.
:func:`draw_rows` (the rows alone, for reads that gather otherwise: n-step returns, frame
stacks, HER) draws the same rows as :func:`draw_pairs` from the same Generator state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from numba import njit

from pearll.buffers.sampling.prefetch import CACHE_LINE_WORDS, prefetch

if TYPE_CHECKING:  # ring.py draws its rows here
    from pearll.buffers.core.ring import Ring
    from pearll.buffers.storage.packed import PackedStorage


def draw_rows(rng: np.random.Generator, ring: Ring, batch_size: int) -> np.ndarray:
    """``(E, batch_size)`` rows, each sub-env's drawn uniformly, with replacement, among the rows
    that hold its transitions. Raises RuntimeError if a sub-env holds none."""
    ring.require_transitions()
    rows = np.empty((ring.num_envs, batch_size), dtype=np.int64)
    _draw_rows(np.uint64(rng.bit_generator.random_raw()), ring.valid, ring.size, rows)
    return rows


def draw_rows_of(rng: np.random.Generator, ring: Ring, env: int, batch_size: int) -> np.ndarray:
    """``(batch_size,)`` rows of sub-env ``env`` alone, drawn as :func:`draw_rows` draws them.
    Raises RuntimeError if it holds no transition."""
    if not ring.count[env]:
        raise RuntimeError(f"cannot sample: sub-env {env} holds no transition; add some first")
    rows = np.empty((1, batch_size), dtype=np.int64)
    seed = np.uint64(rng.bit_generator.random_raw())
    _draw_rows(seed, ring.valid[:, env : env + 1], ring.size[env : env + 1], rows)
    return rows[0]


def draw_flat_rows(
    rng: np.random.Generator, ring: Ring, batch_size: int
) -> tuple[np.ndarray, np.ndarray]:
    """``(rows, envs)``, each ``(batch_size,)``: transitions drawn uniformly, with replacement,
    among every stored transition of every sub-env (``flatten_env=True``).

    Each draw picks sub-env e with probability ``count[e] / total``, then one of its rows as
    :func:`draw_rows` does, so every stored transition has probability ``1 / total``. Sub-envs
    that hold nothing are never picked; raises RuntimeError if the buffer holds nothing.
    """
    if not ring.count.any():
        raise RuntimeError("cannot sample: the buffer holds no transition; add some first")
    rows = np.empty(batch_size, dtype=np.int64)
    envs = np.empty(batch_size, dtype=np.int64)
    seed = np.uint64(rng.bit_generator.random_raw())
    _draw_flat_rows(seed, ring.valid, ring.size, np.cumsum(ring.count), rows, envs)
    return rows, envs


def draw_flat_pairs(
    rng: np.random.Generator, ring: Ring, storage: PackedStorage, batch_size: int
) -> np.ndarray:
    """``(batch_size,)`` records of ``storage.pair_dtype``: the transitions
    :func:`draw_flat_rows` draws from the same Generator state, copied as :func:`draw_pairs`
    copies them. Raises RuntimeError if the buffer holds nothing."""
    if not ring.count.any():
        raise RuntimeError("cannot sample: the buffer holds no transition; add some first")
    records = np.empty(batch_size, dtype=storage.pair_dtype)
    _copy_flat_drawn_pairs(
        np.uint64(rng.bit_generator.random_raw()), ring.valid, ring.size, np.cumsum(ring.count),
        storage.words, storage.row_bytes // 8, storage.capacity + 1, records.view(np.uint64),
    )  # fmt: skip
    return records


def draw_pairs(
    rng: np.random.Generator, ring: Ring, storage: PackedStorage, batch_size: int
) -> np.ndarray:
    """``(E * batch_size,)`` records of ``storage.pair_dtype``, sub-env by sub-env.

    Each sub-env's ``batch_size`` transitions are drawn uniformly, with replacement, among its
    stored ones. Raises RuntimeError (see :meth:`Ring.require_transitions`) if a sub-env holds
    none. The storage must have the mirror row (the ReplayBuffer layout).
    """
    ring.require_transitions()
    records = np.empty(ring.num_envs * batch_size, dtype=storage.pair_dtype)
    _copy_drawn_pairs(
        np.uint64(rng.bit_generator.random_raw()), ring.valid, ring.size, storage.words,
        storage.row_bytes // 8, storage.capacity + 1, records.view(np.uint64), batch_size,
    )  # fmt: skip
    return records


_TWO_POW_MINUS_53 = 2.0**-53
PREFETCHED_ROWS = 32  # rows drawn and prefetched before they are copied


@njit(cache=True, nogil=True)
def _copy_drawn_pairs(seed, valid, size, words, row_words, env_stride, out, batch):
    """Fill each sub-env's ``batch`` records with transitions drawn uniformly among its own.

    ``seed`` a uint64; ``valid`` (capacity, E) (every sub-env must hold a transition, or this
    never ends); ``words`` the packed rows as 8-byte words, ``row_words`` per row, sub-env e's
    row r at row ``e * env_stride + r``; ``out`` (E * batch * 2 * row_words,) the records as
    words, sub-env by sub-env.
    """
    pair_words = 2 * row_words
    sources = np.empty(PREFETCHED_ROWS, dtype=np.int64)
    state = np.uint64(seed)
    for env in range(valid.shape[1]):
        for start in range(0, batch, PREFETCHED_ROWS):
            block = min(PREFETCHED_ROWS, batch - start)
            for i in range(block):
                state, row = _valid_row(state, valid, size[env], env)
                sources[i] = _prefetched(words, (env * env_stride + row) * row_words, pair_words)
            _copy_block(words, sources, block, pair_words, out, (env * batch + start) * pair_words)


@njit(cache=True, nogil=True, inline="always")
def _prefetched(words, source, pair_words):
    """Ask memory for the row pair at word ``source`` (every cache line of it); ``source``."""
    for w in range(0, pair_words, CACHE_LINE_WORDS):
        prefetch(words, source + w)
    prefetch(words, source + pair_words - 1)
    return source


@njit(cache=True, nogil=True, inline="always")
def _copy_block(words, sources, block, pair_words, out, target):
    """Copy the ``block`` prefetched row pairs at ``sources`` to ``out`` from word ``target``."""
    for i in range(block):
        source = sources[i]
        for w in range(pair_words):
            out[target + i * pair_words + w] = words[source + w]


@njit(cache=True, nogil=True)
def _draw_rows(seed, valid, size, out):
    """Fill ``out`` (E, B) with rows drawn as :func:`_copy_drawn_pairs` draws them."""
    state = np.uint64(seed)
    for env in range(out.shape[0]):
        for k in range(out.shape[1]):
            state, out[env, k] = _valid_row(state, valid, size[env], env)


@njit(cache=True, nogil=True)
def _copy_flat_drawn_pairs(seed, valid, size, cumulative, words, row_words, env_stride, out):
    """:func:`_copy_drawn_pairs` for draws over every sub-env (see :func:`_draw_flat_rows`):
    ``out`` holds ``len(out) // (2 * row_words)`` records, in the order drawn."""
    pair_words = 2 * row_words
    batch = out.shape[0] // pair_words
    sources = np.empty(PREFETCHED_ROWS, dtype=np.int64)
    state = np.uint64(seed)
    for start in range(0, batch, PREFETCHED_ROWS):
        block = min(PREFETCHED_ROWS, batch - start)
        for i in range(block):
            state, row, env = _flat_draw(state, valid, size, cumulative)
            sources[i] = _prefetched(words, (env * env_stride + row) * row_words, pair_words)
        _copy_block(words, sources, block, pair_words, out, start * pair_words)


@njit(cache=True, nogil=True)
def _flat_draw(state, valid, size, cumulative):
    """The next state and a ``(row, env)`` drawn uniformly among every sub-env's transitions:
    sub-env e with probability ``count[e] / total``, then one of its rows."""
    state, bits = _splitmix64(state)
    pick = int((bits >> np.uint64(11)) * _TWO_POW_MINUS_53 * cumulative[-1])  # in [0, total)
    env = 0
    while cumulative[env] <= pick:
        env += 1
    state, row = _valid_row(state, valid, size[env], env)
    return state, row, env


@njit(cache=True, nogil=True)
def _draw_flat_rows(seed, valid, size, cumulative, rows, envs):
    """Fill ``rows`` and ``envs`` (B,) with draws among every sub-env's transitions:
    ``cumulative`` (E,) the running total of the sub-envs' counts (its last entry positive)."""
    state = np.uint64(seed)
    for k in range(rows.shape[0]):
        state, rows[k], envs[k] = _flat_draw(state, valid, size, cumulative)


@njit(cache=True, nogil=True)
def _valid_row(state, valid, high, env):
    """The next state, and a row drawn uniformly among the rows of ``env`` that hold a
    transition: rejection sampling, a row drawn among the ``high`` rows in use is kept if
    valid (so this never ends if none is)."""
    while True:
        state, bits = _splitmix64(state)
        # The top 53 bits as a double in [0, 1), times the rows in use.
        row = int((bits >> np.uint64(11)) * _TWO_POW_MINUS_53 * high)
        if valid[row, env]:
            return state, row


@njit(cache=True, nogil=True)
def _splitmix64(state):
    """The next state and output of SplitMix64 (all arithmetic modulo 2**64)."""
    state = state + np.uint64(0x9E3779B97F4A7C15)
    z = state
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return state, z ^ (z >> np.uint64(31))
