"""``sample(B, flatten_env=True)``: B transitions in all, drawn over every stored transition.

Uniform buffers: each stored transition of every sub-env has probability 1 / total, whatever
the sub-envs' counts; prioritized: ``p_i ** alpha / total``. Every drawn transition is a
stored one, on every read path (plain, n-step, frame stacks, HER).
"""

from __future__ import annotations

import numpy as np
import pytest

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer
from tests.buffers.test_prioritized import chi_square_is_plausible, leaf_values
from tests.compare import row, same_transition
from tests.fixtures import MODES, make_env, stacked_env
from tests.reference import ReferenceBuffer, Runner


def filled(buffer_class, num_envs=3, capacity=30, steps=60, make=make_env, **kwargs):
    # Sub-envs with different episode lengths, so their counts differ.
    env = make(num_envs, MODES[0], max_len=3)
    buffer = buffer_class(env, capacity, seed=0, **kwargs)
    reference = ReferenceBuffer(num_envs, capacity, True)
    Runner(env, buffer, reference, seed=1).add(steps)
    return buffer, reference


def slot_counts(buffer, rows, envs) -> np.ndarray:
    counts = np.zeros((buffer.buffer_size, buffer.num_envs))
    np.add.at(counts, (rows, envs), 1)
    return counts


@pytest.mark.parametrize("batch_size", [1, 7, 256])
def test_flat_draws_are_uniform_over_every_stored_transition(batch_size):
    from pearll.buffers.sampling.uniform import draw_flat_rows

    buffer, _ = filled(ReplayBuffer, num_envs=3)
    buffer._ring.invalidate_slots(*np.nonzero(buffer._ring.valid[:20, :1]))  # sub-env 0: fewer
    counts = buffer._ring.count
    assert len(set(counts.tolist())) > 1  # unequal sub-envs: a per-sub-env split is not uniform
    draws = 20_000 // batch_size
    observed = np.zeros((buffer.buffer_size, buffer.num_envs))
    for _ in range(draws):
        rows, envs = draw_flat_rows(buffer.rng, buffer._ring, batch_size)
        observed += slot_counts(buffer, rows, envs)
    valid = buffer._ring.valid
    assert observed[~valid].sum() == 0
    expected = draws * batch_size / valid.sum()
    statistic = ((observed[valid] - expected) ** 2 / expected).sum()
    assert chi_square_is_plausible(statistic, dof=int(valid.sum()) - 1), statistic


@pytest.mark.parametrize(
    ("buffer_class", "kwargs", "make"),
    [
        (ReplayBuffer, {}, make_env),
        (ReplayBuffer, {"n_step": 3, "gamma": 0.9}, make_env),
        (ReplayBuffer, {}, stacked_env),
        (PrioritizedReplayBuffer, {}, make_env),
    ],
    ids=["replay", "n-step", "frame-stacks", "prioritized"],
)
def test_flat_sample_is_b_stored_transitions(buffer_class, kwargs, make):
    capacity = 30
    buffer, reference = filled(buffer_class, capacity=capacity, make=make, **kwargs)
    batch = buffer.sample(50, flatten_env=True)
    assert batch.rewards.shape == (50, 1) and batch.dones.shape == (50, 1)
    assert batch.observations.shape[0] == batch.next_observations.shape[0] == 50
    # Each is one of the transitions all() reads (stacks rebuilt, n-step sums computed there).
    every = buffer.all(flatten_env=True)
    stored = [row(every, j) for j in range(len(every.rewards))]
    assert len(stored) == sum(len(reference.retained(e)) for e in range(3))
    for i in range(50):
        assert any(same_transition(row(batch, i), t) for t in stored), i
        if "n_step" in kwargs:
            j = next(j for j, t in enumerate(stored) if same_transition(row(batch, i), t))
            assert batch.discounts[i, 0] == every.discounts[j, 0]


def test_flat_sample_of_a_buffer_whose_sub_env_holds_nothing():
    buffer, _ = filled(ReplayBuffer, num_envs=2, steps=10)
    buffer._ring.invalidate_slots(*np.nonzero(buffer._ring.valid[:, :1]))
    assert buffer.counts[0] == 0
    with pytest.raises(RuntimeError, match="sub-envs \\[0\\]"):
        buffer.sample(4)  # each sub-env drawn from: sub-env 0 cannot be
    batch = buffer.sample(4, flatten_env=True)
    assert batch.observations.shape == (4, 3) and (batch.observations[:, 0] == 1).all()


def test_prioritized_flat_draws_follow_priority_over_all_sub_envs():
    buffer, _ = filled(PrioritizedReplayBuffer, num_envs=2, capacity=40, steps=100, alpha=0.7)
    slots = np.arange(buffer.buffer_size * buffer.num_envs)
    rng = np.random.default_rng(3)
    priorities = rng.random(len(slots)) * 10
    priorities[slots % 2 == 1] *= 4  # sub-env 1 holds most of the total
    buffer.update_priorities(slots, priorities)
    observed = np.zeros(len(slots))
    draws = 400
    for _ in range(draws):
        batch = buffer.sample(100, flatten_env=True)
        assert batch.indices.shape == (100,) and batch.weights.shape == (100, 1)
        np.add.at(observed, batch.indices, 1)
    stored = leaf_values(buffer).ravel()  # slot = row * E + env
    held = stored > 0
    assert observed[~held].sum() == 0
    expected = stored[held] / stored.sum() * draws * 100
    statistic = ((observed[held] - expected) ** 2 / expected).sum()
    assert chi_square_is_plausible(statistic, dof=int(held.sum()) - 1), statistic


def test_prioritized_flat_weights_match_the_global_formula():
    buffer, _ = filled(PrioritizedReplayBuffer, num_envs=3, capacity=40, steps=90, beta=0.7)
    slots = np.arange(buffer.buffer_size * buffer.num_envs)
    buffer.update_priorities(slots, np.random.default_rng(2).random(len(slots)) * 4)
    batch = buffer.sample(32, flatten_env=True)
    stored = leaf_values(buffer)
    valid = buffer._ring.valid
    probability = stored / stored.sum()  # P(i) over the whole buffer
    with np.errstate(divide="ignore"):
        all_weights = (valid.sum() * probability) ** -0.7
    rows, envs = np.divmod(batch.indices, buffer.num_envs)
    expected = all_weights[rows, envs] / all_weights[valid].max()
    np.testing.assert_allclose(batch.weights[:, 0], expected, 1e-5)


def test_her_flat_sample_relabels_its_share_of_b():
    from tests.buffers.test_her import filled as her_filled

    buffer, _ = her_filled(3, MODES[0], 20, 30, n_sampled_goal=4)
    batch = buffer.sample(10, flatten_env=True)
    assert batch.observations["desired_goal"].shape[0] == 10 and batch.rewards.shape == (10, 1)
    # The first 8 (= 10 * 4 // 5) carry goals achieved in their own episodes: rewards recomputed.
    achieved, desired = batch.next_observations["achieved_goal"], batch.observations["desired_goal"]
    expected = buffer.compute_reward(achieved[:8], desired[:8], [{}] * 8)
    np.testing.assert_array_equal(batch.rewards[:8, 0], expected)
    np.testing.assert_array_equal(batch.next_observations["desired_goal"], desired)


def test_her_flat_draws_are_uniform_over_every_stored_transition():
    from tests.buffers.test_her import filled as her_filled

    buffer, _ = her_filled(3, MODES[0], 20, 40, n_sampled_goal=0)
    buffer._ring.invalidate_slots(*np.nonzero(buffer._ring.valid[:12, :1]))
    valid = buffer._ring.valid
    observed = np.zeros(valid.shape)
    for _ in range(300):
        batch = buffer.sample(100, flatten_env=True)
        # The stored observation says where it came from: find its (row, env) slot.
        tags = batch.observations["observation"]
        observed += locate(buffer, tags)
    assert observed[~valid].sum() == 0
    expected = 300 * 100 / valid.sum()
    statistic = ((observed[valid] - expected) ** 2 / expected).sum()
    assert chi_square_is_plausible(statistic, dof=int(valid.sum()) - 1), statistic


def locate(buffer, observations) -> np.ndarray:
    """Counts ``(rows, E)`` of the valid slots whose stored observation is each of these."""
    stored = buffer.observations["observation"]  # (rows, E, 3)
    counts = np.zeros(buffer._ring.valid.shape)
    for obs in observations:
        match = (stored == obs).all(axis=-1) & buffer._ring.valid
        assert match.sum() == 1
        counts += match
    return counts


@pytest.mark.parametrize("dict_obs", [False, True])
def test_fused_flat_pairs_are_the_rows_the_flat_draw_picks(dict_obs):
    # The fused draw-and-copy and the rows-then-gather path draw the same transitions from the
    # same Generator state (so n-step and plain buffers of one seed sample the same rows).
    env = make_env(3, MODES[0], max_len=3, dict_obs=dict_obs)
    plain = ReplayBuffer(env, 20, seed=4)
    nstep = ReplayBuffer(env, 20, seed=4, n_step=1, gamma=0.5)
    runner = Runner(env, plain, ReferenceBuffer(3, 20, True), seed=2)
    for _ in range(30):
        args = runner.step()
        for buffer in (plain, nstep):
            buffer.add_trajectory(*args[:6], info=args[6])
    for _ in range(3):
        a, b = plain.sample(33, flatten_env=True), nstep.sample(33, flatten_env=True)
        for i in range(33):
            assert same_transition(row(a, i), row(b, i)), i
