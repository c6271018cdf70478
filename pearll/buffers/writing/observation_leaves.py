"""The step writer's observation handling for Dict spaces and SAME_STEP final observations.

A Dict observation is staged leaf by leaf: each leaf has its slot in the packed row (and in
the staged next observation), its shape and the dtypes the general path accepts. The checks
are the step writer's usual ones (class, shape, dtype by attribute compares), so anything
unusual (a missing or extra key, a list, a Python float for an integer leaf) is handed to the
general path, unwritten, which handles it or raises its detailed error.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from pearll.buffers.storage.packed import Slot
from pearll.buffers.writing.stage import castable_dtypes, step_view

ndarray = np.ndarray


class ObservationLeaves:
    """The leaves of a Dict observation, with the staging views they are assigned through."""

    def __init__(
        self,
        stage: np.ndarray,
        space: spaces.Dict,
        slots: dict[str, Any],
        next_slots: Any,
        vector: bool,
        lead: tuple,
    ) -> None:
        """``slots``, ``next_slots``: the Slot trees, in a staged row, of the observation and
        of the next observation (of the Dict ``space``)."""
        leaves = []
        for path, slot in _paths(slots):
            # A Discrete leaf is given as a scalar and stored with a trailing axis of 1.
            discrete = isinstance(_get(space, path), spaces.Discrete)
            given = lead + (() if discrete else slot.shape)
            leaves.append((
                path,
                step_view(stage, slot, vector, discrete),
                step_view(stage, _get(next_slots, path), vector, discrete),
                given, castable_dtypes(slot.dtype), _python_scalars(slot.dtype, given),
            ))  # fmt: skip
        self.leaves = tuple(leaves)
        self.nodes = tuple((path, len(node)) for path, node in _dict_nodes(slots))
        flat = all(len(path) == 1 for path, *_ in leaves)
        self.flat = tuple((path[0], *rest) for path, *rest in leaves) if flat else None
        self.flat_size = len(slots)

    def stage(self, obs: Any, next_obs: Any) -> bool:
        """Stage both observations; False (staging may be half done) if one is unusual."""
        if self.flat is not None:  # one level of keys, the common case: no path walking
            size = self.flat_size
            if not (obs.__class__ is dict and next_obs.__class__ is dict
                    and len(obs) == size and len(next_obs) == size):  # fmt: skip
                return False
            try:
                for key, staged, staged_next, shape, dtypes, scalars in self.flat:
                    value, next_value = obs[key], next_obs[key]
                    if not (_fits(value, shape, dtypes, scalars)
                            and _fits(next_value, shape, dtypes, scalars)):  # fmt: skip
                        return False
                    staged[...] = value
                    staged_next[...] = next_value
            except (KeyError, OverflowError):  # a key missing; a Python int too large
                return False
            return True
        for path, size in self.nodes:
            node, next_node = _get(obs, path), _get(next_obs, path)
            if not (node.__class__ is dict and next_node.__class__ is dict
                    and len(node) == size and len(next_node) == size):  # fmt: skip
                return False
        try:
            for path, staged, staged_next, shape, dtypes, scalars in self.leaves:
                value, next_value = _get(obs, path), _get(next_obs, path)
                if not (_fits(value, shape, dtypes, scalars)
                        and _fits(next_value, shape, dtypes, scalars)):  # fmt: skip
                    return False
                staged[...] = value
                staged_next[...] = next_value
        except (KeyError, OverflowError):  # a key missing; a Python int too large for its leaf
            return False
        return True


def with_final_observations(next_obs: Any, info: Any, ended: np.ndarray) -> Any:
    """A SAME_STEP vector step's true next observations: ``info["final_obs"][i]`` where
    ``info["_final_obs"][i]`` is set (as core/env_info.py substitutes them), or None where
    the step writer should leave the step to the general path: an ended sub-env without a
    final observation (the general path's error), or a final observation that is not an
    array of the next observation's leaf shape and dtype."""
    if info.__class__ is not dict:
        return None
    mask, final = info.get("_final_obs"), info.get("final_obs")
    if not (mask.__class__ is ndarray and mask.dtype == np.bool_ and mask.shape == ended.shape):
        return None
    if (ended & ~mask).any() or final is None:
        return None
    out = _copy(next_obs)
    try:
        for i in np.flatnonzero(mask):
            if not _put_row(out, final[i], i):
                return None
    except (TypeError, IndexError, KeyError, ValueError):  # malformed: the general path says so
        return None
    return out


def _copy(tree: Any) -> Any:
    if tree.__class__ is dict:
        return {key: _copy(value) for key, value in tree.items()}
    return tree.copy()


def _put_row(out: Any, row: Any, i: int) -> bool:
    """``out[..][i] = row[..]`` leaf by leaf; False if ``row`` does not match ``out`` exactly."""
    if out.__class__ is dict:
        if row.__class__ is not dict or row.keys() != out.keys():
            return False
        return all(_put_row(out[key], row[key], i) for key in out)
    if row.__class__ is ndarray or isinstance(row, np.generic):
        if row.shape != out.shape[1:] or row.dtype != out.dtype:
            return False
    elif out.ndim > 1 or row.__class__ not in _python_scalars(out.dtype, ()):
        return False  # a single env's Discrete leaf comes as a Python int
    try:
        out[i] = row
    except OverflowError:
        return False
    return True


def _fits(value: Any, shape: tuple, dtypes: frozenset, scalars: tuple) -> bool:
    if value.__class__ is ndarray or isinstance(value, np.generic):
        return value.shape == shape and value.dtype in dtypes
    return value.__class__ in scalars


def _python_scalars(dtype: np.dtype, given: tuple) -> tuple[type, ...]:
    """The Python numbers a scalar leaf of a single env takes as the general path does."""
    if given:
        return ()
    kind = dtype.kind
    return (int,) if kind in "iu" else (int, float) if kind == "f" else ()


def _paths(slots: Any, path: tuple = ()):
    """``(path, Slot)`` for every leaf, in key order."""
    if isinstance(slots, Slot):
        yield path, slots
    else:
        for key, sub in slots.items():
            yield from _paths(sub, (*path, key))


def _dict_nodes(slots: Any, path: tuple = ()):
    if isinstance(slots, dict):
        yield path, slots
        for key, sub in slots.items():
            yield from _dict_nodes(sub, (*path, key))


def _get(tree: Any, path: tuple) -> Any:
    for key in path:
        tree = tree[key]
    return tree
