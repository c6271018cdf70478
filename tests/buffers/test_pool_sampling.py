"""The pooled surface (pool_sampling.py, PER's in prioritized_sampling.py, ``read_windows``):
draws over every sub-env by the buffer's own sampler, reads of given slots, and windows at
given anchors, checked against ``sample``, ``sample_sequences`` and the naive reference."""

from __future__ import annotations

import copy

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pearll.buffers import HERBuffer, PrioritizedReplayBuffer, ReplayBuffer
from tests.buffers.test_prioritized import chi_square_is_plausible
from tests.buffers.test_sample_sequences import expected_windows, filled
from tests.compare import row, same_transition
from tests.fixtures import MODES, make_env

CLASSES = [ReplayBuffer, PrioritizedReplayBuffer]
FIELDS = ("observations", "actions", "rewards", "next_observations", "dones", "extras")


def prioritized(buffer):
    """Unequal priorities on every stored transition (so a uniform draw would be caught)."""
    rows, envs = np.nonzero(buffer._ring.valid)
    values = 1.0 + (rows * 7 + envs * 3) % 5
    buffer.update_priorities(rows * buffer.num_envs + envs, values)
    return buffer


def same_records(a, b):
    for name in a.__dataclass_fields__:
        x, y = getattr(a, name), getattr(b, name)
        if isinstance(x, dict):
            assert x.keys() == y.keys()
            for key in x:
                np.testing.assert_array_equal(x[key], y[key])
        elif x is None:
            assert y is None, name
        else:
            np.testing.assert_array_equal(x, y, err_msg=name)


@pytest.mark.parametrize("cls", CLASSES)
@pytest.mark.parametrize("kwargs", [{}, {"n_step": 3, "gamma": 0.9}, {"frames": True}])
def test_draw_slots_then_read_is_the_flat_sample(cls, kwargs):
    buffer, _ = filled(3, MODES[0], 20, 50, buffer_class=cls, **kwargs)
    if cls is PrioritizedReplayBuffer:
        prioritized(buffer)
    twin = copy.deepcopy(buffer)
    sampled = buffer.sample(40, flatten_env=True)
    envs, rows, masses = twin.draw_slots(40)
    read = twin.read_transitions(envs, rows)
    for name in FIELDS:
        a, b = getattr(sampled, name), getattr(read, name)
        if isinstance(a, dict):
            for key in a:
                np.testing.assert_array_equal(a[key], b[key])
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)
    np.testing.assert_array_equal(sampled.discounts, read.discounts)
    assert envs.dtype == rows.dtype == np.int64 and masses.dtype == np.float64
    if cls is PrioritizedReplayBuffer:
        np.testing.assert_array_equal(sampled.indices, rows * 3 + envs)
        np.testing.assert_array_equal(masses, twin._tree.get(envs, rows))
        assert twin._samples_drawn == buffer._samples_drawn - 1  # no step of the schedule
    else:
        assert (masses == 1).all()
    # Both streams went on in step.
    assert twin.rng.random() == buffer.rng.random()


@pytest.mark.parametrize("cls", CLASSES)
def test_pooled_draws_follow_the_masses(cls):
    buffer, _ = filled(3, MODES[1], 16, 40, buffer_class=cls)
    buffer._ring.invalidate_slots(*np.nonzero(buffer._ring.valid[:9, :1]))  # unequal counts
    if cls is PrioritizedReplayBuffer:
        buffer._repair_priorities()
        prioritized(buffer)
    counts = np.zeros(buffer._ring.valid.shape)
    for _ in range(150):
        envs, rows, _ = buffer.draw_slots(64)
        np.add.at(counts, (rows, envs), 1)
    valid = buffer._ring.valid
    assert counts[~valid].sum() == 0
    rows, envs = np.nonzero(valid)
    uniform = cls is ReplayBuffer
    mass = np.ones(len(rows)) if uniform else buffer._tree.get(envs, rows)
    pool = buffer.pool_mass()
    assert pool.count == valid.sum() and pool.mass == pytest.approx(mass.sum())
    assert pool.min_mass == mass.min()
    expected = counts.sum() * mass / mass.sum()
    statistic = float(((counts[rows, envs] - expected) ** 2 / expected).sum())
    assert chi_square_is_plausible(statistic, len(rows) - 1), statistic


def test_read_transitions_are_the_stored_ones():
    buffer, reference = filled(2, MODES[2], 12, 30)
    key = lambda obs: tuple(np.asarray(obs).reshape(-1).tolist())  # noqa: E731
    truth = {key(t.obs): t for e in range(2) for t in reference.retained(e)}
    envs, rows, _ = buffer.draw_slots(50)
    read = buffer.read_transitions(envs, rows)
    for i in range(50):
        got = row(read, i)
        assert same_transition(got, truth[key(got.obs)])


@pytest.mark.parametrize(
    ("envs", "rows", "error", "match"),
    [
        ([0.0], [1], TypeError, "envs"),
        ([[0]], [[1]], ValueError, "1-D"),
        ([0, 1], [1], ValueError, "one length"),
        ([2], [1], ValueError, r"\[0, 2\)"),
        ([0], [-1], ValueError, r"\[0, 12\)"),
    ],
)
def test_bad_slots_are_refused(envs, rows, error, match):
    buffer, _ = filled(2, MODES[0], 12, 30)
    with pytest.raises(error, match=match):
        buffer.read_transitions(np.array(envs), np.array(rows))
    with pytest.raises(error, match=match):
        buffer.read_windows(np.array(envs), np.array(rows), 3)


def test_a_slot_without_a_transition_is_refused_and_nothing_remembered():
    buffer, _ = filled(2, MODES[0], 12, 30)
    free = np.flatnonzero(~buffer._ring.valid[:, 1])[:1]
    with pytest.raises(ValueError, match="hold none"):
        buffer.read_windows(np.array([1]), free, 3)
    assert buffer._window_memory is None


@pytest.mark.parametrize("cls", CLASSES)
def test_an_empty_pool_draws_nothing(cls):
    buffer = cls(make_env(2, MODES[0]), 12, seed=0)
    state = copy.deepcopy(buffer.rng.bit_generator.state)
    with pytest.raises(RuntimeError, match="no transition"):
        buffer.draw_slots(4)
    assert buffer.rng.bit_generator.state == state
    assert tuple(buffer.pool_mass()) == (0, 0.0, np.inf)


def test_her_declares_that_sample_relabels():
    assert HERBuffer.relabels_in_sample and not ReplayBuffer.relabels_in_sample
    assert not PrioritizedReplayBuffer.relabels_in_sample


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    num_envs=st.sampled_from([None, 3]),
    mode=st.sampled_from(MODES),
    capacity=st.integers(6, 30),
    steps=st.integers(1, 70),
    max_len=st.integers(1, 7),
    burn_in=st.integers(0, 3),
    length=st.integers(1, 6),
    boundary=st.sampled_from(["pad", "cross"]),
    frames=st.booleans(),
    seed=st.integers(0, 3),
)
def test_windows_at_pooled_anchors_equal_the_reference(
    num_envs, mode, capacity, steps, max_len, burn_in, length, boundary, frames, seed
):
    buffer, reference = filled(num_envs, mode, capacity, steps, max_len, frames=frames, seed=seed)
    if not len(buffer):
        return
    envs, rows, _ = buffer.draw_slots(12)
    out = buffer.read_windows(envs, rows, length, burn_in=burn_in, boundary=boundary)
    steps_per_window = burn_in + length
    assert out.mask.shape == out.is_first.shape == (12, steps_per_window)
    np.testing.assert_array_equal(out.indices, rows * buffer.num_envs + envs)
    assert out.weights is None
    for i in range(12):
        [(expected, firsts)] = expected_windows(
            buffer, reference, int(envs[i]), [rows[i]], burn_in, length, boundary == "cross"
        )
        np.testing.assert_array_equal(out.is_first[i], firsts)
        real = np.array([s is not None for s in expected], dtype=np.float32)
        np.testing.assert_array_equal(out.mask[i], real)
        assert not out.learn_mask[i, :burn_in].any()
        for t, step in enumerate(expected):
            if step is None:
                assert not np.any(out.observations[i, t]) and not out.rewards[i, t, 0]
                continue
            np.testing.assert_array_equal(out.observations[i, t], step.obs)
            np.testing.assert_array_equal(out.next_observations[i, t], step.next_obs)
            assert out.actions[i, t, 0] == step.action
            assert out.rewards[i, t, 0] == np.float32(step.reward)
            assert out.dones[i, t, 0] == float(step.done)
            assert out.truncateds[i, t, 0] == bool(step.truncated)
