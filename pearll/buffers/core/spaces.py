"""What a gymnasium space stores as (shape, dtype), and checking values against it.

A space maps to a :class:`FieldSpec` (or a dict of them for Dict spaces): the per-transition
shape and dtype a buffer allocates, plus the space itself for range checks. Discrete values are
stored as ``(1,)`` int64 arrays so that Discrete actions give the tutorial's ``(buffer_size, 1)``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces

from pearll.common.tree import tree_map


@dataclass(frozen=True)
class FieldSpec:
    """The shape (without batch axes) and dtype of one stored value, and the space it came from."""

    shape: tuple[int, ...]
    dtype: np.dtype
    space: spaces.Space | None = None


def spec_from_space(space: spaces.Space) -> FieldSpec | dict[str, Any]:
    """The FieldSpec tree a buffer allocates for values of ``space``."""
    if isinstance(space, spaces.Dict):
        return {key: spec_from_space(sub) for key, sub in space.spaces.items()}
    if isinstance(space, spaces.Box):
        return FieldSpec(tuple(space.shape), np.dtype(space.dtype), space)
    if isinstance(space, spaces.Discrete):
        return FieldSpec((1,), np.dtype(np.int64), space)
    if isinstance(space, spaces.MultiDiscrete):
        return FieldSpec(tuple(space.nvec.shape), np.dtype(np.int64), space)
    if isinstance(space, spaces.MultiBinary):
        # Python ints: shapes are saved as JSON (space.n may hold numpy integers).
        return FieldSpec(tuple(int(n) for n in np.atleast_1d(space.n)), np.dtype(np.int8), space)
    raise TypeError(
        f"unsupported space {space!r}: expected Box, Discrete, MultiDiscrete, MultiBinary or a "
        "Dict of them"
    )


SCALAR_FLOAT = FieldSpec((1,), np.dtype(np.float32))
SCALAR_BOOL = FieldSpec((1,), np.dtype(np.bool_))


def coerce(
    value: Any,
    spec: FieldSpec | dict[str, Any],
    lead: tuple[int, ...],
    name: str,
    check_range: bool = False,
) -> np.ndarray | dict[str, Any]:
    """``value`` as an array (tree) of shape ``lead + spec.shape``, or a clear error.

    ``lead`` is the batch prefix the caller promised: ``()`` for one step of a single env,
    ``(E,)`` for a vector env, ``(T,)`` or ``(T, E)`` for a batch of steps. A spec of shape
    ``(1,)`` also accepts values of shape ``lead`` (a scalar reward, done or Discrete action).
    Every value must convert to ``spec.dtype`` exactly (:func:`check_exact`). Nothing is
    written anywhere; errors are ValueError (shape, range) or TypeError (dtype, inexact value).
    """
    if isinstance(spec, dict):
        if not isinstance(value, dict) or set(value) != set(spec):
            got = sorted(value) if isinstance(value, dict) else type(value).__name__
            raise ValueError(f"{name}: expected a dict with keys {sorted(spec)}, got {got}")
        return {k: coerce(value[k], spec[k], lead, f"{name}[{k!r}]", check_range) for k in spec}
    array = np.asarray(value)
    expected = lead + spec.shape
    if array.shape != expected:
        if spec.shape == (1,) and array.shape == lead:
            array = array.reshape(expected)
        else:
            also = f" or {lead}" if spec.shape == (1,) else ""
            raise ValueError(f"{name}: expected shape {expected}{also}, got {array.shape}")
    check_exact(array, spec.dtype, name)
    if check_range and spec.space is not None:
        _check_range(array, spec.space, name)
    return array


def castable(got: np.dtype, want: np.dtype) -> bool:
    """Whether values of dtype ``got`` may be offered for a field of dtype ``want`` at all:
    both numeric (bool, integer or float). Each value must still survive the cast
    (:func:`check_exact`): the one rule of every write path."""
    return got.kind in "biuf" and want.kind in "biuf"


def always_exact(got: np.dtype, want: np.dtype) -> bool:
    """Whether every value of dtype ``got`` survives the cast to ``want``, so that none needs
    checking: a safe cast (int8 into int64, uint8 into int16, bool into anything), or any real
    into a float field (float fields round to the nearest value they hold)."""
    return castable(got, want) and (want.kind == "f" or bool(np.can_cast(got, want, "safe")))


def check_exact(array: np.ndarray, want: np.dtype, name: str) -> None:
    """Raise TypeError unless every value of ``array`` converts to ``want`` exactly.

    Into an integer field: integers within its range, and floats that are such integers
    (1.0 into int64, 255.0 into uint8; not 0.5, 300, NaN or inf). Into a bool field: 0 and 1
    (also 0.0 and 1.0). Into a float field: any real, rounded to the nearest (see
    :func:`always_exact`).
    """
    got = array.dtype
    if not castable(got, want):
        raise TypeError(f"{name}: expected values castable to {want}, got dtype {got}")
    if always_exact(got, want):
        return
    if want.kind == "b":
        held = (array == 0) | (array == 1)  # False for NaN too
    else:
        low, high = np.iinfo(want).min, np.iinfo(want).max
        if got.kind == "f":
            # In float64, where both bounds are exact: low is -2**k or 0, high + 1 is 2**k.
            values = array.astype(np.float64) if got.itemsize < 8 else array
            held = (
                (values >= float(low)) & (values < float(high) + 1) & (np.trunc(values) == values)
            )
        else:
            held = (array >= low) & (array <= high)
    if not held.all():
        bad = array[~held] if array.ndim else array
        raise TypeError(
            f"{name}: expected values castable to {want}, got dtype {got} with values "
            f"{np.ravel(bad)[:5]} that {want} does not hold exactly"
        )


def space_bounds(space: spaces.Space) -> tuple[Any, Any] | None:
    """``(low, high)``, the inclusive bounds of a space's values (elementwise, broadcastable to
    its shape), or None for a space whose values are not checked against bounds."""
    if isinstance(space, spaces.Discrete):
        return space.start, space.start + space.n - 1
    if isinstance(space, spaces.MultiDiscrete):
        return space.start, space.start + space.nvec - 1
    if isinstance(space, spaces.MultiBinary):
        return 0, 1
    if isinstance(space, spaces.Box):
        return space.low, space.high
    return None


def _check_range(array: np.ndarray, space: spaces.Space, name: str) -> None:
    bounds = space_bounds(space)
    if bounds is None:
        return
    low, high = bounds
    inside = (array >= low) & (array <= high)  # False for NaN too
    if not inside.all():
        bad = array[~inside] if array.ndim else array
        raise ValueError(f"{name}: {np.ravel(bad)[:5]} outside the space {space}")


def nbytes_per_item(spec: FieldSpec | dict[str, Any]) -> int:
    """Bytes one value of ``spec`` occupies."""
    total = 0

    def add(leaf: FieldSpec) -> None:
        nonlocal total
        total += int(np.prod(leaf.shape, dtype=np.int64)) * leaf.dtype.itemsize

    tree_map(add, spec)
    return total


# Keyword arguments of add_trajectory / add_batch_trajectories: extra fields cannot take them.
RESERVED_FIELD_NAMES = frozenset(
    {"self", "observation", "action", "reward", "next_observation", "done", "truncated", "info"}
    | {"observations", "actions", "rewards", "next_observations", "dones", "truncateds", "infos"}
    | {"episode_ends"}
)


def extra_field_specs(fields: dict[str, Any] | None) -> dict[str, FieldSpec]:
    """FieldSpecs of caller-declared per-step fields, ``{name: (shape, dtype)}``.

    ``shape`` is the per-step shape without batch axes (``()`` for a scalar such as a
    log-probability); ``dtype`` any numeric numpy dtype. Names are keyword arguments at add
    time, so they must be identifiers other than the add methods' own parameters.
    """
    if fields is None:
        return {}
    if not isinstance(fields, dict):
        raise TypeError(f"extra_fields: expected a dict name -> (shape, dtype), got {fields!r}")
    specs = {}
    for name, declared in fields.items():
        if not isinstance(name, str) or not name.isidentifier() or name in RESERVED_FIELD_NAMES:
            raise ValueError(
                f"extra_fields: {name!r} is not usable as a keyword argument of add_trajectory "
                f"(expected an identifier other than {sorted(RESERVED_FIELD_NAMES)})"
            )
        specs[name] = _extra_spec(name, declared)
    return specs


def _extra_spec(name: str, declared: Any) -> FieldSpec:
    try:
        shape, dtype = declared
        shape = (shape,) if isinstance(shape, int | np.integer) else tuple(shape)
        dtype = np.dtype(dtype)
    except (TypeError, ValueError):
        raise ValueError(
            f"extra_fields[{name!r}]: expected (shape, dtype) such as ((), np.float32), "
            f"got {declared!r}"
        ) from None
    if not all(isinstance(n, int | np.integer) and n >= 0 for n in shape):
        raise ValueError(f"extra_fields[{name!r}]: shape must be non-negative ints, got {shape}")
    if dtype.kind not in "biuf":
        raise ValueError(f"extra_fields[{name!r}]: expected a numeric dtype, got {dtype}")
    return FieldSpec(tuple(int(n) for n in shape), dtype)


def buffer_field_specs(
    info: Any,
    extra_specs: dict[str, FieldSpec],
    next_observations: bool,
    own_fields: dict[str, Any],
) -> dict[str, Any]:
    """Name -> FieldSpec tree of every per-step field of a buffer of ``info``'s env (an
    EnvInfo): the transition's fields, the declared ``extras``, a ``next_observations`` array
    if ``next_observations`` (next observations apart), and the class's ``own_fields``."""
    observations = spec_from_space(info.observation_space)
    specs: dict[str, Any] = {
        "observations": observations,
        "actions": spec_from_space(info.action_space),
        "rewards": SCALAR_FLOAT,
        "dones": SCALAR_FLOAT,
        "truncateds": SCALAR_BOOL,
        "extras": dict(extra_specs),
    }
    if next_observations:
        specs["next_observations"] = observations
    return specs | own_fields
