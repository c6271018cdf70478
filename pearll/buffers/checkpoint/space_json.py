"""Gymnasium spaces as plain JSON, so a saved buffer can be loaded without its env.

Covers what buffers store (:func:`pearll.buffers.core.spaces.spec_from_space`): Box, Discrete,
MultiDiscrete, MultiBinary and (nested) Dict. Box bounds round-trip exactly: integer bounds as
JSON integers, float bounds as JSON numbers (exact for float32 and float64) with the non-finite
ones as the strings ``"inf"``, ``"-inf"``, ``"nan"``, so the JSON stays strict; bounds that are
the same everywhere are one value, else a flat list. A space's RNG is not
saved (buffers never sample from it).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium import spaces


def space_to_json(space: spaces.Space) -> dict[str, Any]:
    """A JSON-able dict describing ``space``; TypeError for a space buffers cannot store."""
    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_to_json(s) for k, s in space.spaces.items()}}
    if isinstance(space, spaces.Box):
        return {
            "type": "Box",
            "shape": list(space.shape),
            "dtype": np.dtype(space.dtype).str,
            "low": _array_to_json(space.low),
            "high": _array_to_json(space.high),
        }
    if isinstance(space, spaces.Discrete):
        return {
            "type": "Discrete",
            "n": int(space.n),
            "start": int(space.start),
            "dtype": np.dtype(space.dtype).str,
        }
    if isinstance(space, spaces.MultiDiscrete):
        return {
            "type": "MultiDiscrete",
            "nvec": space.nvec.tolist(),
            "start": space.start.tolist(),
            "dtype": np.dtype(space.dtype).str,
        }
    if isinstance(space, spaces.MultiBinary):
        n = space.n
        return {"type": "MultiBinary", "n": int(n) if np.ndim(n) == 0 else list(map(int, n))}
    raise TypeError(
        f"cannot save space {space!r}: expected Box, Discrete, MultiDiscrete, MultiBinary or a "
        "Dict of them"
    )


def space_from_json(data: dict[str, Any]) -> spaces.Space:
    """The space :func:`space_to_json` described; ValueError if ``data`` is not such a dict."""
    kind = data.get("type") if isinstance(data, dict) else None
    if kind == "Dict":
        return spaces.Dict({k: space_from_json(s) for k, s in data["spaces"].items()})
    if kind == "Box":
        dtype = np.dtype(data["dtype"])
        shape = tuple(data["shape"])
        low = _array_from_json(data["low"], dtype, shape)
        high = _array_from_json(data["high"], dtype, shape)
        return spaces.Box(low, high, shape=shape, dtype=dtype)
    if kind == "Discrete":
        return spaces.Discrete(data["n"], start=data["start"], dtype=np.dtype(data["dtype"]))
    if kind == "MultiDiscrete":
        dtype = np.dtype(data["dtype"])
        return spaces.MultiDiscrete(
            np.array(data["nvec"], dtype=dtype), dtype=dtype, start=np.array(data["start"])
        )
    if kind == "MultiBinary":
        return spaces.MultiBinary(data["n"])
    raise ValueError(f"not a saved space: {data!r}")


def _array_to_json(array: np.ndarray) -> Any:
    """One value if all are equal (the usual bounds), else the flat list of them."""
    # tolist() gives Python ints for integer dtypes (exact) and floats for float dtypes (exact).
    flat = [_finite_or_name(v) for v in np.asarray(array).reshape(-1).tolist()]
    return flat[0] if flat and all(v == flat[0] for v in flat) else flat


def _finite_or_name(value: Any) -> Any:
    return repr(value) if isinstance(value, float) and not math.isfinite(value) else value


def _array_from_json(values: Any, dtype: np.dtype, shape: tuple[int, ...]) -> np.ndarray:
    if not isinstance(values, list):
        return np.full(shape, _parse(values), dtype=dtype)
    return np.array([_parse(v) for v in values], dtype=dtype).reshape(shape)


def _parse(value: Any) -> Any:
    return float(value) if isinstance(value, str) else value
