"""PrioritizedReplayBuffer: the boundary contract, the sampling distribution, weights, inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pearll.buffers import PrioritizedReplayBuffer
from pearll.common.type_aliases import PrioritizedTrajectories
from tests.compare import env_slice, row, same_transition
from tests.fixtures import MODES, make_env
from tests.reference import ReferenceBuffer, Runner
from tests.state import assert_same_state


def filled(num_envs=None, capacity=50, steps=80, seed=0, **kwargs):
    env = make_env(num_envs, MODES[0])
    buffer = PrioritizedReplayBuffer(env, capacity, seed=seed, **kwargs)
    Runner(env, buffer, ReferenceBuffer(num_envs or 1, capacity, True), seed=seed).add(steps)
    return buffer


def leaf_values(buffer) -> np.ndarray:
    """``(buffer_size, E)`` stored ``priority ** alpha`` of every slot."""
    rows, envs = np.indices((buffer.buffer_size, buffer.num_envs))
    return buffer._tree.get(envs.ravel(), rows.ravel()).reshape(rows.shape)


def chi_square_is_plausible(statistic: float, dof: int) -> bool:
    """Whether a chi-square statistic is below the 0.999 quantile (Wilson-Hilferty)."""
    z = 3.090  # standard normal 0.999 quantile
    quantile = dof * (1 - 2 / (9 * dof) + z * np.sqrt(2 / (9 * dof))) ** 3
    return statistic < quantile


@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("dict_obs", [False, True])
def test_only_stored_transitions_are_drawn_and_only_they_have_priority(num_envs, mode, dict_obs):
    env = make_env(num_envs, mode, dict_obs=dict_obs)
    buffer = PrioritizedReplayBuffer(env, 7, seed=0)
    reference = ReferenceBuffer(num_envs or 1, 7, spare_rows=True)
    runner = Runner(env, buffer, reference, seed=1)
    rng = np.random.default_rng(0)
    for _ in range(40):
        runner.add(1)
        assert ((leaf_values(buffer) > 0) == buffer._ring.valid).all()
        batch = buffer.sample(16)
        for e in range(num_envs or 1):
            got = env_slice(batch, e) if num_envs else batch
            retained = reference.retained(e)
            for i in range(16):
                assert any(same_transition(row(got, i), t) for t in retained)
        buffer.update_priorities(batch.indices, rng.random(batch.indices.shape) * 5)


@pytest.mark.parametrize("num_envs", [None, 2])
@pytest.mark.parametrize("batch_size", [1, 64])
def test_draws_follow_priority_to_the_alpha(num_envs, batch_size):
    buffer = filled(num_envs, capacity=40, steps=200, alpha=0.7, eps=0.01)
    rng = np.random.default_rng(1)
    slots = np.arange(buffer.buffer_size * buffer.num_envs)
    buffer.update_priorities(slots, rng.random(len(slots)) * 10)  # invalid slots are skipped
    draws = 8_000 if batch_size == 1 else 40_000 // batch_size
    counts = np.zeros(len(slots))
    for _ in range(draws):
        np.add.at(counts, buffer.sample(batch_size).indices.ravel(), 1)
    stored = leaf_values(buffer).ravel()
    for e in range(buffer.num_envs):
        mine = (slots % buffer.num_envs == e) & (stored > 0)
        expected = stored[mine] / stored[mine].sum() * draws * batch_size
        assert counts[(slots % buffer.num_envs == e) & ~mine].sum() == 0
        statistic = ((counts[mine] - expected) ** 2 / expected).sum()
        assert chi_square_is_plausible(statistic, dof=int(mine.sum()) - 1), statistic


def test_stored_priority_is_priority_plus_eps_to_the_alpha_and_new_ones_get_the_max():
    buffer = filled(None, capacity=30, steps=20, alpha=0.5, eps=0.1)
    valid = np.flatnonzero(buffer._ring.valid[:, 0])
    assert np.allclose(leaf_values(buffer)[valid, 0], 1.0)  # max priority before any update
    buffer.update_priorities(valid[:3], np.array([3.9, 0.0, 8.9]))
    np.testing.assert_allclose(leaf_values(buffer)[valid[:3], 0], [2.0, 0.1**0.5, 3.0])
    env = make_env(None)
    obs, _ = env.reset()
    next_obs, *_ = env.step(0)
    buffer.add_trajectory(obs, 0, 1.0, next_obs, False)
    newest = buffer._ring.recent_rows(1)[0, 0]
    assert leaf_values(buffer)[newest, 0] == pytest.approx(3.0)  # (8.9 + 0.1) ** 0.5


@pytest.mark.parametrize("num_envs", [None, 3])
def test_weights_match_the_formula(num_envs):
    buffer = filled(num_envs, capacity=40, steps=90, alpha=0.6, beta=0.7)
    rng = np.random.default_rng(2)
    slots = np.arange(buffer.buffer_size * buffer.num_envs)
    buffer.update_priorities(slots, rng.random(len(slots)) * 4)
    batch = buffer.sample(32, flatten_env=True)
    stored = leaf_values(buffer)  # (rows, E)
    counts = buffer._ring.valid.sum(axis=0)
    probability = stored / stored.sum(axis=0)  # P_e(i) within each sub-env
    with np.errstate(divide="ignore"):  # slots holding no transition: never drawn
        all_weights = (counts * probability) ** -0.7
    max_weight = all_weights[buffer._ring.valid].max()
    rows, envs = np.divmod(batch.indices, buffer.num_envs)
    np.testing.assert_allclose(batch.weights[:, 0], all_weights[rows, envs] / max_weight, 1e-5)
    assert batch.weights.max() <= 1.0


def test_equal_priorities_give_unit_weights_and_output_shapes():
    buffer = filled(3, capacity=20, steps=30)
    batch = buffer.sample(5)
    assert isinstance(batch, PrioritizedTrajectories)
    assert batch.indices.shape == (3, 5) and batch.weights.shape == (3, 5, 1)
    np.testing.assert_allclose(batch.weights, 1.0)
    np.testing.assert_array_equal(batch.indices % 3, np.broadcast_to(np.arange(3)[:, None], (3, 5)))
    flat = buffer.sample(5, flatten_env=True)
    assert flat.indices.shape == (15,) and flat.weights.shape == (15, 1)
    torch_batch = buffer.sample(5, dtype="torch")
    assert torch_batch.indices.dtype == torch.int64 and torch_batch.weights.dtype == torch.float32


def test_update_accepts_torch_and_a_trailing_axis_and_skips_overwritten_slots():
    buffer = filled(None, capacity=10, steps=30)
    batch = buffer.sample(4, dtype="torch")
    buffer.update_priorities(batch.indices, torch.full((4, 1), 2.0, requires_grad=True))
    np.testing.assert_allclose(leaf_values(buffer)[batch.indices.numpy(), 0], (2.0 + 1e-6) ** 0.6)
    invalid = np.flatnonzero(~buffer._ring.valid[:, 0])
    before = leaf_values(buffer).copy()
    buffer.update_priorities(invalid, np.full(len(invalid), 7.0))
    np.testing.assert_array_equal(leaf_values(buffer), before)


@pytest.mark.parametrize(
    ("indices", "priorities", "error", "match"),
    [
        ([0, 1], [1.0, np.nan], ValueError, "finite"),
        ([0, 1], [1.0, np.inf], ValueError, "finite"),
        ([0, 1], [1.0, -0.5], ValueError, ">= 0"),
        ([0, 1], [1.0, 2.0, 3.0], ValueError, "shape"),
        ([[0, 1]], [1.0, 2.0], ValueError, "shape"),
        ([0, 10], [1.0, 2.0], ValueError, r"\[0, 10\)"),
        ([0, -1], [1.0, 2.0], ValueError, r"\[0, 10\)"),
        ([0.0, 1.0], [1.0, 2.0], TypeError, "integers"),
        ([0, 1], ["a", "b"], TypeError, "real numbers"),
    ],
)
def test_bad_priority_updates_raise_and_change_nothing(indices, priorities, error, match):
    buffer = filled(None, capacity=10, steps=30)
    before, max_before = leaf_values(buffer).copy(), buffer._max_priority
    with pytest.raises(error, match=match):
        buffer.update_priorities(np.array(indices), np.array(priorities))
    np.testing.assert_array_equal(leaf_values(buffer), before)
    assert buffer._max_priority == max_before


@pytest.mark.parametrize(
    ("alpha", "priorities"),
    [(2.0, [1e200]), (1.0, [1.7e308, 1.7e308]), (1.0, [np.finfo(np.float64).max / 5])],
)
def test_priorities_whose_power_or_sum_overflows_are_refused(alpha, priorities):
    """They used to be accepted: weights became NaN, and every later add raised OverflowError
    after writing (len 5 -> 6)."""
    buffer, twin = (filled(None, capacity=10, steps=5, alpha=alpha) for _ in range(2))
    with pytest.raises(ValueError, match="too large"):
        buffer.update_priorities(np.arange(len(priorities)), np.array(priorities))
    assert_same_state(buffer, twin)  # nothing changed
    runner = Runner(make_env(None, MODES[0]), buffer, ReferenceBuffer(1, 10, True), seed=1)
    runner.add(3)
    assert len(buffer) == 8
    batch = buffer.sample(16)
    assert np.isfinite(batch.weights).all()


def test_the_largest_accepted_priorities_keep_sums_and_weights_finite():
    buffer = filled(None, capacity=10, steps=30, alpha=1.0, eps=0.0)
    limit = np.finfo(np.float64).max / buffer.buffer_size
    indices = buffer.sample(10).indices
    buffer.update_priorities(indices, np.full(indices.shape, limit))
    assert np.isfinite(buffer._tree.total()).all()
    Runner(make_env(None, MODES[0]), buffer, ReferenceBuffer(1, 10, True), seed=1).add(3)
    batch = buffer.sample(32)
    assert np.isfinite(batch.weights).all() and (batch.weights > 0).all()


def test_beta_setter_and_linear_schedule():
    buffer = filled(None, capacity=10, steps=20, beta=0.4, beta_steps=4)
    betas = []
    for _ in range(6):
        betas.append(buffer.beta)
        buffer.sample(2)
    np.testing.assert_allclose(betas, [0.4, 0.55, 0.7, 0.85, 1.0, 1.0])
    buffer.beta = 0.3
    buffer.sample(2)
    assert buffer.beta == 0.3 and buffer.beta_steps is None
    with pytest.raises(ValueError, match="beta"):
        buffer.beta = -1.0


@pytest.mark.parametrize(
    "kwargs",
    [{"alpha": -0.1}, {"beta": float("nan")}, {"eps": -1.0}, {"beta_steps": 0}],
)
def test_bad_options_are_rejected(kwargs):
    with pytest.raises(ValueError):
        PrioritizedReplayBuffer(make_env(None), 10, **kwargs)


def test_sampling_an_empty_buffer_or_zero_priorities_raises():
    buffer = PrioritizedReplayBuffer(make_env(None), 10, eps=0.0)
    with pytest.raises(RuntimeError, match="no transition"):
        buffer.sample(2)
    buffer = filled(None, capacity=10, steps=20, eps=0.0)
    buffer.update_priorities(np.arange(10), np.zeros(10))
    with pytest.raises(RuntimeError, match="eps > 0"):
        buffer.sample(2)


def test_reset_empties_the_tree():
    buffer = filled(None, capacity=10, steps=20)
    buffer.update_priorities(np.arange(10), np.full(10, 9.0))
    buffer.reset()
    assert buffer._tree.total()[0] == 0 and buffer._max_priority == 1.0
    assert buffer.nbytes > buffer.buffer_size * 16


def test_last_and_all_read_in_order_without_weights():
    from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer
    from tests.fixtures import make_env
    from tests.reference import ReferenceBuffer, Runner

    buffers = [cls(make_env(2), 16, seed=0) for cls in (PrioritizedReplayBuffer, ReplayBuffer)]
    for buffer in buffers:
        Runner(make_env(2), buffer, ReferenceBuffer(2, 16, True), seed=3).add(30)
    prioritized, plain = buffers
    for read in (lambda b: b.last(3), lambda b: b.all(), lambda b: b.all(flatten_env=True)):
        got, want = read(prioritized), read(plain)
        assert type(got).__name__ == "Trajectories"
        np.testing.assert_array_equal(got.observations, want.observations)
        np.testing.assert_array_equal(got.next_observations, want.next_observations)
