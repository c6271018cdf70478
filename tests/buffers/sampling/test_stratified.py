"""stratified_pool_draw against brute force: the trees' leaves laid end to end as one array,
the strata's targets searched in its prefix sums."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers.sampling.stratified import stratified_pool_draw
from pearll.buffers.sampling.sum_tree import SumTree


def brute_force(values: np.ndarray, uniforms: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``values`` (trees, capacity): the leaf of the concatenation that each target falls in."""
    flat = values.reshape(-1)
    k = len(uniforms)
    targets = (np.arange(k) + uniforms) / k * flat.sum()
    index = np.searchsorted(np.cumsum(flat), targets, side="right")
    return np.divmod(index, values.shape[1])


def tree_of(values: np.ndarray) -> SumTree:
    tree = SumTree(*values.shape)
    trees, leaves = np.nonzero(np.ones_like(values, dtype=bool))
    tree.update(trees, leaves, values[trees, leaves])
    return tree


@settings(max_examples=200, deadline=None)
@given(
    num_trees=st.integers(1, 4),
    capacity=st.integers(1, 40),
    k=st.integers(1, 50),
    seed=st.integers(0, 2**32 - 1),
    empty_tree=st.booleans(),
)
def test_draws_equal_brute_force(num_trees, capacity, k, seed, empty_tree):
    rng = np.random.default_rng(seed)
    # Small integers: every prefix sum is exact, so brute force and the trees agree exactly.
    values = rng.integers(0, 4, size=(num_trees, capacity)).astype(np.float64)
    if empty_tree:
        values[rng.integers(num_trees)] = 0.0
    if values.sum() == 0:
        values[-1, -1] = 1.0
    uniforms = rng.random(k)
    trees, leaves = stratified_pool_draw(tree_of(values), uniforms)
    want_trees, want_leaves = brute_force(values, uniforms)
    np.testing.assert_array_equal(trees, want_trees)
    np.testing.assert_array_equal(leaves, want_leaves)
    assert trees.dtype == leaves.dtype == np.int64
    assert (values[trees, leaves] > 0).all()


def test_one_draw_per_stratum_at_the_ends_of_the_unit_interval():
    values = np.array([[0.0, 2.0], [0.0, 0.0], [1.0, 1.0]])
    tree = tree_of(values)
    # u = 0 hits each stratum's start; u just below 1 its end; never a zero leaf or tree.
    for uniforms in (np.zeros(4), np.full(4, np.nextafter(1.0, 0.0))):
        trees, leaves = stratified_pool_draw(tree, uniforms)
        assert (values[trees, leaves] > 0).all()
    trees, leaves = stratified_pool_draw(tree, np.zeros(4))
    pairs = list(zip(trees.tolist(), leaves.tolist(), strict=True))
    assert pairs == [(0, 1), (0, 1), (2, 0), (2, 1)]


def test_draws_nothing_itself_and_refuses_an_empty_pool():
    tree = SumTree(2, 5)
    with pytest.raises(ValueError, match="zero"):
        stratified_pool_draw(tree, np.full(3, 0.5))
