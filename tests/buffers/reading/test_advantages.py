"""GAE, n-step and Monte-Carlo returns against the naive per-episode loops."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pearll.buffers.reading import advantages
from tests import advantages_reference as reference


def random_rollout(seed: int, steps: int, num_envs: int | None, p_end: float):
    """A (T, E) rollout (``(T,)`` for ``num_envs=None``) with terminations and truncations.

    ``next_values[t]`` is ``values[t + 1]`` inside an episode (the same observation) and an
    unrelated number where the episode ends, as the value of its final observation would be;
    terminated steps get one too, which the estimates must ignore.
    """
    rng = np.random.default_rng(seed)
    shape = (steps,) if num_envs is None else (steps, num_envs)
    ends = rng.random(shape) < p_end
    terminated = ends & (rng.random(shape) < 0.5)
    truncated = ends & ~terminated
    values = rng.normal(size=shape)
    final_values = rng.normal(size=shape)
    next_values = final_values.copy()
    inside = ~ends[:-1]
    next_values[:-1][inside] = values[1:][inside]
    rewards = rng.normal(size=shape)
    return rewards, values, next_values, terminated, truncated


def columns(*arrays):
    """Per env: the 1-D sequences of each array."""
    if arrays[0].ndim == 1:
        return [arrays]
    return [tuple(a[:, e] for a in arrays) for e in range(arrays[0].shape[1])]


rollouts = st.tuples(
    st.integers(0, 2**32 - 1),
    st.integers(1, 25),
    st.sampled_from([None, 1, 3]),
    st.sampled_from([0.0, 0.1, 0.5, 1.0]),
)
unit = st.sampled_from([0.0, 0.5, 0.9, 0.99, 1.0])


@settings(max_examples=60, deadline=None)
@given(rollouts, unit, unit)
def test_gae_equals_per_episode_loops(rollout, gamma, lam):
    rewards, values, next_values, term, trunc = random_rollout(*rollout)
    adv, ret = advantages.gae(rewards, values, next_values, term, term | trunc, gamma, lam)
    got = columns(adv, ret)
    for e, (r, v, nv, te, tr) in enumerate(columns(rewards, values, next_values, term, trunc)):
        want_adv, want_ret = reference.gae(r, v, nv, te, tr, gamma, lam)
        np.testing.assert_allclose(got[e][0], want_adv, rtol=1e-9, atol=1e-9)
        np.testing.assert_allclose(got[e][1], want_ret, rtol=1e-9, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(rollouts, unit, st.integers(1, 30))
def test_n_step_returns_equal_per_episode_loops(rollout, gamma, n):
    rewards, values, next_values, term, trunc = random_rollout(*rollout)
    got = columns(advantages.n_step_returns(rewards, next_values, term, term | trunc, gamma, n))
    for e, (r, v, nv, te, tr) in enumerate(columns(rewards, values, next_values, term, trunc)):
        want = reference.n_step_returns(r, v, nv, te, tr, gamma, n)
        np.testing.assert_allclose(got[e][0], want, rtol=1e-9, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(rollouts, unit)
def test_monte_carlo_returns_equal_per_episode_loops_and_gae_lambda_one(rollout, gamma):
    rewards, values, next_values, term, trunc = random_rollout(*rollout)
    ended = term | trunc
    got = advantages.monte_carlo_returns(rewards, next_values, term, ended, gamma)
    for e, (r, v, nv, te, tr) in enumerate(columns(rewards, values, next_values, term, trunc)):
        want = reference.monte_carlo_returns(r, v, nv, te, tr, gamma)
        np.testing.assert_allclose(columns(got)[e][0], want, rtol=1e-9, atol=1e-9)
    _, lambda_one = advantages.gae(rewards, values, next_values, term, ended, gamma, 1.0)
    np.testing.assert_allclose(got, lambda_one, rtol=1e-9, atol=1e-9)


def test_truncation_bootstraps_from_the_final_value_and_termination_does_not():
    rewards = np.ones(2)
    next_values = np.array([10.0, 10.0])
    flags = np.array([True, True])  # both steps end an episode
    adv_trunc, _ = advantages.gae(rewards, np.zeros(2), next_values, ~flags, flags, 0.5, 0.5)
    adv_term, _ = advantages.gae(rewards, np.zeros(2), next_values, flags, flags, 0.5, 0.5)
    np.testing.assert_allclose(adv_trunc, [6.0, 6.0])
    np.testing.assert_allclose(adv_term, [1.0, 1.0])


def test_dtype_follows_the_inputs_at_least_float32():
    f32 = np.ones((3, 2), np.float32)
    flags = np.zeros((3, 2), bool)
    assert advantages.gae(f32, f32, f32, flags, flags, 0.9, 0.9)[0].dtype == np.float32
    ints = f32.astype(np.int64)
    assert advantages.gae(ints, ints, ints, flags, flags, 0.9, 0.9)[0].dtype.kind == "f"
    assert advantages.n_step_returns(f32.astype(float), f32, flags, flags, 0.9, 2).dtype == float


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda r, f: advantages.gae(r, r[:2], r, f, f, 0.9, 0.9), "values: expected the"),
        (lambda r, f: advantages.gae(r, r, r, f[0], f, 0.9, 0.9), "terminated: expected"),
        (lambda r, f: advantages.gae(r, r, r, f, f, 1.5, 0.9), "gamma: expected a number"),
        (lambda r, f: advantages.gae(r, r, r, f, f, 0.9, -1), "gae_lambda: expected"),
        (lambda r, f: advantages.n_step_returns(r, r, f, f, 0.9, 0), "n: expected a positive"),
        (lambda r, f: advantages.monte_carlo_returns(r[0, 0], r, f, f, 0.9), "expected the"),
    ],
)
def test_bad_input_is_rejected_with_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call(np.ones((4, 2)), np.zeros((4, 2), bool))


def test_non_numeric_rewards_are_rejected():
    flags = np.zeros(2, bool)
    with pytest.raises(TypeError, match="expected real numbers"):
        advantages.gae(np.array(["a", "b"]), np.ones(2), np.ones(2), flags, flags, 0.9, 0.9)
