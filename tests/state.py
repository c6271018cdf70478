"""Comparing two buffers' whole state (what ``save`` writes), leaf by leaf."""

from __future__ import annotations

from typing import Any

import numpy as np

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer

# Every buffer class that persistence must cover; new buffer classes add themselves here.
BUFFER_CLASSES = (ReplayBuffer, RolloutBuffer, PrioritizedReplayBuffer)


def state_leaves(tree: Any, keys: tuple = ()) -> dict[tuple, Any]:
    if isinstance(tree, dict):
        leaves = (state_leaves(sub, (*keys, key)) for key, sub in tree.items())
        return {k: v for subtree in leaves for k, v in subtree.items()}
    return {keys: tree}


def assert_same_state(a: Any, b: Any) -> None:
    """``a`` and ``b`` hold equal arrays (values, shapes, dtypes) and equal settings."""
    assert type(a) is type(b)
    assert a._config() == b._config()
    left, right = state_leaves(a._state()), state_leaves(b._state())
    assert left.keys() == right.keys()
    for key, x in left.items():
        y = right[key]
        if isinstance(x, np.ndarray | np.generic):
            assert isinstance(y, np.ndarray | np.generic), key
            assert x.dtype == y.dtype and x.shape == y.shape, key
            assert np.array_equal(x, y), key
        else:
            assert x == y, key
