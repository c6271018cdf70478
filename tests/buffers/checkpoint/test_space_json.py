"""Spaces survive the trip through JSON exactly, bounds included."""

from __future__ import annotations

import json

import numpy as np
import pytest
from gymnasium import spaces

from pearll.buffers.checkpoint.space_json import space_from_json, space_to_json

SPACES = [
    spaces.Box(-np.inf, np.inf, shape=(3, 2), dtype=np.float32),
    spaces.Box(np.array([0.1, -1e-7]), np.array([np.inf, 3.3]), dtype=np.float64),
    spaces.Box(0, 255, shape=(4, 4, 3), dtype=np.uint8),
    spaces.Box(np.iinfo(np.int64).min, np.iinfo(np.int64).max, shape=(2,), dtype=np.int64),
    spaces.Discrete(5, start=-2),
    spaces.MultiDiscrete([[3, 4], [5, 6]]),
    spaces.MultiDiscrete([3, 4], start=[1, -2]),
    spaces.MultiBinary(4),
    spaces.MultiBinary([2, 3]),
    spaces.Dict({"a": spaces.Discrete(2), "b": spaces.Dict({"c": spaces.Box(-1, 1, (2,))})}),
]


@pytest.mark.parametrize("space", SPACES, ids=str)
def test_space_round_trips_through_strict_json(space):
    text = json.dumps(space_to_json(space), allow_nan=False)
    restored = space_from_json(json.loads(text))
    assert restored == space
    assert restored.dtype == space.dtype


def test_unsupported_space_and_bad_json_are_refused():
    with pytest.raises(TypeError, match="cannot save space"):
        space_to_json(spaces.Text(5))
    with pytest.raises(ValueError, match="not a saved space"):
        space_from_json({"type": "Graph"})
