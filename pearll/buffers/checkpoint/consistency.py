"""Checks that a loaded state fits the buffer it is loaded into, before any of it is used.

:func:`check_like` compares the structure with a fresh buffer's ``_state()``: same keys, arrays
of the same shapes and dtypes, JSON leaves of the same kinds. :func:`check_values` then checks
what a structure cannot show: the values fixed by the configuration (the storage layout, ring
capacities) and the invariants the buffers' bookkeeping relies on (cursors inside the ring,
counts that match the transition masks, finite non-negative priorities), so that even a
hand-edited checkpoint whose checksums were recomputed cannot make ``all()`` loop or ``sample``
index outside an array: it raises :class:`~pearll.buffers.errors.CheckpointError`.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from pearll.buffers.checkpoint.protocol import AnyLength
from pearll.buffers.errors import CheckpointError

# JSON values that the configuration fixes: they must equal the fresh buffer's.
_FIXED = (("storage", "layout"), ("ring", "capacity"), ("ring", "spare_rows"),
          ("episodes", "capacity"))  # fmt: skip


def check_like(got: Any, expected: Any, where: str) -> None:
    """Raise CheckpointError unless ``got`` has the structure, shapes and dtypes of ``expected``.

    Dicts compare by keys, arrays by shape and dtype (an :class:`AnyLength` array by dtype and
    by every axis but its first), numpy scalars by dtype, JSON leaves by kind (bool, int, float
    (an int is one too), str, list, None).
    """
    if isinstance(expected, dict):
        if not isinstance(got, dict) or set(got) != set(expected):
            keys = sorted(got) if isinstance(got, dict) else type(got).__name__
            raise CheckpointError(f"{where}: expected keys {sorted(expected)}, got {keys}")
        for key in expected:
            check_like(got[key], expected[key], f"{where}.{key}")
    elif isinstance(expected, np.ndarray):
        skip = 1 if isinstance(expected, AnyLength) else 0  # the first axis may be any length
        same = (
            isinstance(got, np.ndarray)
            and (got.dtype, got.ndim) == (expected.dtype, expected.ndim)
            and got.shape[skip:] == expected.shape[skip:]
        )
        if not same:
            found = f"{got.dtype} {got.shape}" if isinstance(got, np.ndarray) else repr(got)[:60]
            shape = ("any", *expected.shape[1:]) if skip else expected.shape
            raise CheckpointError(
                f"{where}: expected a {expected.dtype} array of shape {shape}, got {found}"
            )
    elif isinstance(expected, np.generic):
        if not isinstance(got, np.generic) or got.dtype != expected.dtype:
            raise CheckpointError(f"{where}: expected a {expected.dtype} scalar, got {got!r}"[:200])
    elif _kind(got) != _kind(expected):
        raise CheckpointError(
            f"{where}: expected a {_kind(expected)}, got {_kind(got)} {got!r}"[:200]
        )


def _kind(value: Any) -> str:
    if isinstance(value, bool | np.bool_):
        return "bool"
    if isinstance(value, int | float | np.integer | np.floating):
        return "number"
    return type(value).__name__


def check_values(state: dict[str, Any], expected: dict[str, Any]) -> None:
    """Raise CheckpointError unless ``state`` (shaped like ``expected``) is consistent."""
    for keys in _FIXED:
        got, want = _at(state, keys), _at(expected, keys)
        if json.dumps(got, sort_keys=True) != json.dumps(want, sort_keys=True):
            raise CheckpointError(
                f"state.{'.'.join(keys)}: {got!r} does not match this configuration's {want!r}"[
                    :300
                ]
            )
    if "ring" in state:
        _check_ring(state["ring"])
    if "priorities" in state:
        _check_priorities(state)
    if "episodes" in state:
        _check_non_negative(state["episodes"], ("written", "current"), "state.episodes")
    if "frames" in state:
        _check_non_negative(state["frames"], ("episode_step",), "state.frames")


def _at(tree: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _check_ring(ring: dict[str, Any]) -> None:
    capacity, pos, size = ring["capacity"], ring["pos"], ring["size"]
    valid, count = ring["valid"], ring["count"]
    if ((pos < 0) | (pos >= capacity)).any() or ((size < 0) | (size > capacity)).any():
        raise CheckpointError(
            f"state.ring: cursors {pos.tolist()} / fill levels {size.tolist()} outside a ring of "
            f"{capacity} rows"
        )
    # Rows outside each sub-env's window (the size rows before pos) hold no transition.
    age = (pos[None, :] - 1 - np.arange(capacity)[:, None]) % capacity
    if (valid & (age >= size[None, :])).any():
        raise CheckpointError("state.ring.valid: marks rows outside the filled part of the ring")
    if not np.array_equal(count, valid.sum(axis=0)):
        raise CheckpointError(
            f"state.ring.count: {count.tolist()} transitions, but state.ring.valid marks "
            f"{valid.sum(axis=0).tolist()}"
        )


def _check_priorities(state: dict[str, Any]) -> None:
    sums, mins = state["priorities"]["sums"], state["priorities"]["mins"]
    if not (np.isfinite(sums).all() and (sums >= 0).all() and (mins > 0).all()):
        raise CheckpointError(
            "state.priorities: the sum tree holds negative, zero minima or non-finite values"
        )
    max_priority, drawn = state["max_priority"], state["samples_drawn"]
    if not (np.isfinite(max_priority) and max_priority > 0) or isinstance(drawn, bool) or drawn < 0:
        raise CheckpointError(
            f"state: max_priority {max_priority!r} / samples_drawn {drawn!r}: expected a finite "
            "positive priority and a count >= 0"
        )


def _check_non_negative(tree: dict[str, Any], keys: tuple[str, ...], where: str) -> None:
    for key in keys:
        if (np.asarray(tree[key]) < 0).any():
            raise CheckpointError(f"{where}.{key}: expected values >= 0")
