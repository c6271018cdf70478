"""SumTree against brute force: totals, minima and prefix-sum search under random updates."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers.sampling.sum_tree import BRANCHING, SumTree


class BruteTree:
    """The same contract the slow way: a dense array per tree, cumsum and searchsorted."""

    def __init__(self, num_trees: int, capacity: int):
        self.values = np.zeros((num_trees, capacity))

    def update(self, trees, leaves, values):
        for t, i, v in zip(trees, leaves, values, strict=True):
            self.values[t, i] = v

    def find(self, targets):
        cums = np.cumsum(self.values, axis=1)
        return np.stack(
            [np.searchsorted(c, x, side="right") for c, x in zip(cums, targets, strict=True)]
        )

    def min(self):
        positive = np.where(self.values > 0, self.values, np.inf)
        return positive.min(axis=1)


def assert_same(tree: SumTree, brute: BruteTree, rng: np.random.Generator) -> None:
    np.testing.assert_array_equal(tree.total(), brute.values.sum(axis=1))
    np.testing.assert_array_equal(tree.min(), brute.min())
    trees, leaves = np.nonzero(np.ones_like(brute.values, dtype=bool))
    np.testing.assert_array_equal(tree.get(trees, leaves), brute.values[trees, leaves])
    if (tree.total() > 0).all():
        targets = rng.random((tree.num_trees, 64)) * tree.total()[:, None]
        np.testing.assert_array_equal(tree.find(targets), brute.find(targets))


# Integer-valued priorities keep every sum exact, so the search must match brute force exactly,
# including targets that fall on a boundary between two leaves.
@settings(max_examples=60, deadline=None)
@given(
    num_trees=st.integers(1, 3),
    capacity=st.integers(1, 300),
    batches=st.lists(st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 4)), max_size=40)),
    seed=st.integers(0, 2**16),
)
def test_matches_brute_force_under_random_batch_updates(num_trees, capacity, batches, seed):
    rng = np.random.default_rng(seed)
    tree, brute = SumTree(num_trees, capacity), BruteTree(num_trees, capacity)
    for batch in batches:
        slots = np.array([s for s, _ in batch], dtype=np.int64).reshape(-1)
        trees, leaves = slots % num_trees, (slots // num_trees) % capacity
        values = np.array([v for _, v in batch], dtype=np.float64).reshape(-1)
        tree.update(trees, leaves, values)
        brute.update(trees, leaves, values)
        assert_same(tree, brute, rng)


def test_deep_tree_with_float_priorities_matches_brute_force():
    rng = np.random.default_rng(0)
    capacity = BRANCHING**3 + 5  # four levels below the root, the last one partly padding
    tree, brute = SumTree(2, capacity), BruteTree(2, capacity)
    for _ in range(20):
        trees = rng.integers(0, 2, 500)
        leaves = rng.integers(0, capacity, 500)
        values = rng.random(500) * (rng.random(500) < 0.8)
        tree.update(trees, leaves, values)
        brute.update(trees, leaves, values)
    np.testing.assert_allclose(tree.total(), brute.values.sum(axis=1), rtol=1e-12)
    np.testing.assert_array_equal(tree.min(), brute.min())
    # Targets at least 1e-9 away from any boundary: rounding cannot move them to a neighbour.
    cums = np.cumsum(brute.values, axis=1)
    targets = rng.random((2, 2000)) * tree.total()[:, None]
    gaps = np.stack(
        [np.abs(c[None] - x[:, None]).min(axis=1) for c, x in zip(cums, targets, strict=True)]
    )
    targets = np.where(gaps > 1e-9, targets, targets * 0.5)
    np.testing.assert_array_equal(tree.find(targets), brute.find(targets))


def test_search_overshooting_the_total_still_lands_on_a_positive_leaf():
    tree = SumTree(1, 40)
    tree.update(np.zeros(3, dtype=np.int64), np.array([3, 17, 21]), np.array([1.0, 2.0, 0.5]))
    found = tree.find(np.array([[3.5, 3.5 + 1e-12, 10.0, 3.0 + 1e-9]]))
    assert np.isin(found, [3, 17, 21]).all()
    assert found[0, 3] == 21


def test_zero_leaves_are_never_found_and_left_out_of_the_minimum():
    rng = np.random.default_rng(1)
    tree = SumTree(1, 1000)
    leaves = np.arange(0, 1000, 7)
    tree.update(np.zeros(len(leaves), dtype=np.int64), leaves, rng.random(len(leaves)) + 0.1)
    found = tree.find(rng.random((1, 5000)) * tree.total()[:, None])
    assert np.isin(found, leaves).all()
    assert tree.min()[0] >= 0.1


def test_a_repeated_leaf_takes_the_last_value():
    tree = SumTree(1, 10)
    tree.update(np.zeros(3, dtype=np.int64), np.array([4, 4, 4]), np.array([1.0, 5.0, 2.0]))
    assert tree.total()[0] == 2.0 and tree.get(np.array([0]), np.array([4]))[0] == 2.0


def test_search_of_an_empty_tree_or_wrong_shape_raises():
    tree = SumTree(2, 10)
    tree.update(np.array([0]), np.array([1]), np.array([1.0]))
    with pytest.raises(ValueError, match=r"trees \[1\]"):
        tree.find(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="expected shape"):
        tree.find(np.zeros(3))


def test_required_bytes_is_what_is_allocated():
    for capacity in (1, BRANCHING, BRANCHING + 1, 1000):
        assert SumTree(3, capacity).nbytes == SumTree.required_bytes(3, capacity)
