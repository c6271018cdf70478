"""The compiled priority update against its numpy specification (Priorities.set)."""

import copy

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers.sampling.priorities import Priorities


def _filled(capacity: int, num_envs: int, seed: int) -> tuple[Priorities, np.ndarray]:
    rng = np.random.default_rng(seed)
    priorities = Priorities(num_envs, capacity)
    valid = rng.random((capacity, num_envs)) < 0.8
    rows, envs = np.nonzero(valid)
    priorities.tree.update(envs, rows, rng.random(len(rows)))
    return priorities, valid


@settings(max_examples=60, deadline=None)
@given(
    capacity=st.integers(1, 300),
    num_envs=st.integers(1, 4),
    count=st.integers(0, 40),
    alpha=st.sampled_from([0.0, 0.6, 1.0, 2.5]),
    eps=st.sampled_from([0.0, 1e-6, 0.1]),
    seed=st.integers(0, 2**16),
)
def test_compiled_update_is_the_specification(capacity, num_envs, count, alpha, eps, seed):
    fast, valid = _filled(capacity, num_envs, seed)
    spec = copy.deepcopy(fast)
    rng = np.random.default_rng(seed + 1)
    slots = rng.integers(0, capacity * num_envs, count)
    values = rng.random(count) * 10
    assert fast.try_update_slots(slots, values, valid, alpha, eps)
    rows, envs = np.divmod(slots, num_envs)
    spec.set(rows, envs, values, valid[rows, envs], alpha, eps)
    np.testing.assert_array_equal(fast.tree.sums, spec.tree.sums)
    np.testing.assert_array_equal(fast.tree.mins, spec.tree.mins)
    assert fast.max_priority == spec.max_priority


def test_out_of_range_input_changes_nothing():
    fast, valid = _filled(50, 2, 0)
    before = copy.deepcopy(fast)
    good = np.array([0, 1, 2])
    for slots, values in [
        (np.array([0, 100, 2]), np.ones(3)),  # a slot past capacity * E
        (np.array([0, -1, 2]), np.ones(3)),
        (good, np.array([1.0, np.nan, 1.0])),
        (good, np.array([1.0, -0.5, 1.0])),
        (good, np.array([1.0, np.inf, 1.0])),
        (good, np.array([1.0, 1e308, 1.0])),  # (p + eps) ** alpha above the limit
    ]:
        assert not fast.try_update_slots(slots, values, valid, 1.0, 0.0)
        np.testing.assert_array_equal(fast.tree.sums, before.tree.sums)
        np.testing.assert_array_equal(fast.tree.mins, before.tree.mins)
        assert fast.max_priority == before.max_priority


def test_part_state_round_trip_and_reset():
    part, _ = _filled(20, 3, 1)
    part.max_priority, part.samples_drawn = 4.0, 7
    other = Priorities(3, 20)
    other.set_state(copy.deepcopy(part.state()))
    np.testing.assert_array_equal(other.tree.sums, part.tree.sums)
    assert (other.max_priority, other.samples_drawn) == (4.0, 7)
    other.reset()
    assert other.tree.total().sum() == 0 and np.isinf(other.tree.min()).all()
    assert (other.max_priority, other.samples_drawn) == (1.0, 0)
