"""RolloutBuffer: advantages of the stored rollout, minibatch epochs, clear between rollouts."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.vector import AutoresetMode

from pearll.buffers import RolloutBuffer
from tests import advantages_reference
from tests.compare import assert_rows_match
from tests.fixtures import MODES, make_env
from tests.reference import ReferenceBuffer, Runner

LOG_PROB = {"log_prob": ((), np.float32)}


def value_of(obs):
    """A made-up critic: a different number for every (tag, episode, step) observation."""
    tagged = np.asarray(obs["tag"] if isinstance(obs, dict) else obs, dtype=np.float64)
    return tagged[..., 0] * 100 + tagged[..., 1] * 0.37 + tagged[..., 2] * 1.1


def filled(num_envs, mode, dict_obs=False, buffer_size=40, steps=25, seed=1):
    """A RolloutBuffer and its reference after ``steps`` env steps; log_prob = V(obs) / 10."""
    env = make_env(num_envs, mode, dict_obs=dict_obs)
    buffer = RolloutBuffer(env, buffer_size, seed=0, extra_fields=LOG_PROB)
    reference = ReferenceBuffer(num_envs or 1, buffer_size, spare_rows=False)
    runner = Runner(env, buffer, reference, seed=seed)
    add_steps(runner, steps)
    return buffer, reference, runner


def add_steps(runner, steps):
    for _ in range(steps):
        obs, action, reward, next_obs, term, trunc, info = runner.step()
        runner.buffer.add_trajectory(
            obs, action, reward, next_obs, term, trunc, info, log_prob=value_of(obs) / 10
        )


def estimate(buffer, gamma=0.9, lam=0.8):
    rollout = buffer.all(flatten_env=True)
    values = value_of(rollout.observations)
    return values, buffer.compute_advantages(
        values, value_of(rollout.next_observations), gamma, lam
    )


@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dict_obs", [False, True])
@pytest.mark.parametrize("buffer_size", [7, 40])  # wrapped around / sub-envs of unequal counts
def test_advantages_equal_per_episode_loops_over_the_true_transitions(
    num_envs, mode, dict_obs, buffer_size
):
    buffer, reference, _ = filled(num_envs, mode, dict_obs, buffer_size)
    _, (advantages, returns) = estimate(buffer)
    want_adv, want_ret = [], []
    for e in range(num_envs or 1):
        kept = reference.retained(e)
        adv, ret = advantages_reference.gae(
            [t.reward for t in kept],
            [value_of(t.obs) for t in kept],
            [value_of(t.next_obs) for t in kept],
            [t.done for t in kept],
            [t.truncated for t in kept],
            0.9,
            0.8,
        )
        want_adv += adv
        want_ret += ret
    np.testing.assert_allclose(advantages, want_adv, rtol=1e-5, atol=1e-3)
    np.testing.assert_allclose(returns, want_ret, rtol=1e-5, atol=1e-3)


def test_sub_envs_of_unequal_counts_are_covered_whole():
    buffer, _, _ = filled(3, AutoresetMode.NEXT_STEP, buffer_size=40, steps=25)
    assert len(set(buffer.counts.tolist())) > 1, "the schedule should drop unequal reset steps"
    _, (advantages, _) = estimate(buffer)
    assert advantages.shape == (len(buffer),)


def observation_keys(batch_observations):
    tagged = (
        batch_observations["tag"] if isinstance(batch_observations, dict) else batch_observations
    )
    return [tuple(row) for row in np.asarray(tagged).tolist()]


@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("dict_obs", [False, True])
@pytest.mark.parametrize("batch_size", [1, 8, 1000])
def test_minibatches_visit_every_stored_step_once_per_epoch(num_envs, dict_obs, batch_size):
    buffer, _, _ = filled(num_envs, AutoresetMode.NEXT_STEP, dict_obs, buffer_size=30, steps=25)
    values, (advantages, returns) = estimate(buffer)
    rollout = buffer.all(flatten_env=True)
    keys = observation_keys(rollout.observations)
    assert len(set(keys)) == len(keys) == len(buffer)
    expected = {
        key: (rollout.actions[i], values[i], advantages[i], returns[i], values[i] / 10)
        for i, key in enumerate(keys)
    }
    batches = list(buffer.minibatches(batch_size, epochs=3))
    per_epoch = -(-len(buffer) // batch_size)
    assert len(batches) == 3 * per_epoch
    orders = []
    for epoch in range(3):
        seen = []
        for batch in batches[epoch * per_epoch : (epoch + 1) * per_epoch]:
            assert len(batch.advantages) <= batch_size
            for i, key in enumerate(observation_keys(batch.observations)):
                action, value, advantage, ret, log_prob = expected[key]
                np.testing.assert_array_equal(batch.actions[i], action)
                np.testing.assert_allclose(
                    [batch.values[i], batch.advantages[i], batch.returns[i], batch.log_probs[i]],
                    [value, advantage, ret, log_prob],
                    rtol=1e-6,
                )
                seen.append(key)
        assert sorted(seen) == sorted(keys)
        orders.append(seen)
    if batch_size > 1:
        assert orders[0] != orders[1], "each epoch draws a fresh permutation"


def test_minibatch_order_is_seeded_by_the_buffer_rng():
    def first_keys():
        buffer, _, _ = filled(2, AutoresetMode.NEXT_STEP)
        estimate(buffer)
        return [observation_keys(b.observations) for b in buffer.minibatches(5, epochs=2)]

    assert first_keys() == first_keys()


def test_normalized_advantages_have_mean_zero_and_std_one_per_minibatch():
    buffer, _, _ = filled(3, AutoresetMode.SAME_STEP)
    estimate(buffer)
    for batch in buffer.minibatches(16, normalize_advantages=True):
        if len(batch.advantages) > 1:
            assert abs(batch.advantages.mean()) < 1e-5
            assert abs(batch.advantages.std() - 1) < 1e-3


def test_torch_minibatches():
    torch = pytest.importorskip("torch")
    buffer, _, _ = filled(3, AutoresetMode.NEXT_STEP, dict_obs=True)
    estimate(buffer)
    batch = next(iter(buffer.minibatches(10, dtype="torch")))
    assert isinstance(batch.observations["tag"], torch.Tensor)
    assert batch.observations["tag"].shape == (10, 3)
    assert batch.actions.shape == (10, 1)
    assert batch.advantages.shape == batch.log_probs.shape == (10,)
    assert batch.advantages.dtype == torch.float32


def test_minibatches_need_advantages_of_the_current_contents():
    buffer, _, runner = filled(2, AutoresetMode.NEXT_STEP)
    with pytest.raises(RuntimeError, match="compute_advantages"):
        buffer.minibatches(4)
    estimate(buffer)
    buffer.minibatches(4)
    add_steps(runner, 1)
    with pytest.raises(RuntimeError, match="compute_advantages"):
        buffer.minibatches(4)


def test_bad_values_are_rejected_and_change_nothing():
    buffer, _, _ = filled(2, AutoresetMode.NEXT_STEP)
    n = len(buffer)
    _, (advantages, _) = estimate(buffer)
    before = advantages.copy()
    bad = [
        (np.zeros(n - 1), np.zeros(n), ValueError, rf"values: expected shape \({n},\)"),
        (np.zeros(n), np.zeros((n, 1)), ValueError, "next_values: expected shape"),
        (np.full(n, np.nan), np.zeros(n), ValueError, "finite"),
        (np.array(["x"] * n), np.zeros(n), TypeError, "real numbers"),
    ]
    for values, next_values, error, message in bad:
        with pytest.raises(error, match=message):
            buffer.compute_advantages(values, next_values)
    batch = next(iter(buffer.minibatches(n)))
    np.testing.assert_allclose(np.sort(batch.advantages), np.sort(before))
    with pytest.raises(ValueError, match="epochs"):
        buffer.minibatches(4, epochs=0)


def test_empty_buffer_has_no_advantages():
    buffer = RolloutBuffer(make_env(None), 5)
    with pytest.raises(RuntimeError, match="no transition"):
        buffer.compute_advantages(np.zeros(0), np.zeros(0))


@pytest.mark.parametrize("mode", MODES)
def test_clear_keeps_the_episode_state_so_reset_steps_are_still_dropped(mode):
    buffer, reference, runner = filled(3, mode, buffer_size=50, steps=1)
    while not runner.needs_reset.any():  # stop right after some sub-env's episode ended
        add_steps(runner, 1)
    ended = runner.needs_reset.copy()
    marks = [len(reference.transitions[e]) for e in range(3)]
    buffer.clear()
    assert len(buffer) == 0
    add_steps(runner, 1)
    if mode == AutoresetMode.NEXT_STEP:
        np.testing.assert_array_equal(buffer.counts, ~ended)  # the reset steps were dropped
    for _ in range(10):
        add_steps(runner, 1)
        expected = [t for e in range(3) for t in reference.transitions[e][marks[e] :]]
        assert_rows_match(buffer.all(flatten_env=True), expected)
