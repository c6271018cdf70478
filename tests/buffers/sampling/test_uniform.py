"""ReplayBuffer.sample's fused draw-and-copy: stored transitions, drawn uniformly, any layout."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pearll.buffers import ReplayBuffer
from pearll.buffers.sampling.uniform import _splitmix64, draw_pairs, draw_rows, draw_rows_of
from tests.compare import env_slice, row, same_transition
from tests.fixtures import MODES, make_env
from tests.reference import ReferenceBuffer, Runner

PAIR = ("observations", "next_observations")


def build(num_envs, capacity=9, seed=0, **env_kwargs):
    env = make_env(num_envs, MODES[0], **env_kwargs)
    buffer = ReplayBuffer(env, capacity, seed=seed)
    reference = ReferenceBuffer(num_envs or 1, capacity, True)
    return buffer, reference, Runner(env, buffer, reference, seed=seed + 1)


@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("dict_obs", [False, True])
@pytest.mark.parametrize("steps", [4, 30])
def test_every_drawn_pair_is_a_stored_transition(num_envs, dict_obs, steps):
    buffer, reference, runner = build(num_envs, dict_obs=dict_obs, max_len=3)
    runner.add(steps)
    batch = buffer.sample(40)
    for e in range(num_envs or 1):
        drawn = env_slice(batch, e) if num_envs else batch
        retained = reference.retained(e)
        for i in range(40):
            assert any(same_transition(row(drawn, i), t) for t in retained), (e, i)


@pytest.mark.parametrize("num_envs", [None, 2])
def test_draws_stay_uniform_when_half_the_rows_hold_no_transition(num_envs):
    # Episodes of one step: every other row holds a final observation, so half the draws are
    # rejected.
    buffer, reference, runner = build(num_envs, capacity=40, max_len=1)
    runner.add(200)
    batch = buffer.sample(10_000)
    for e in range(num_envs or 1):
        drawn = env_slice(batch, e) if num_envs else batch
        retained = reference.retained(e)
        keys = [tuple(k) for k in np.asarray(drawn.observations)]
        by_key = {tuple(np.asarray(t.obs)): t for t in retained}
        assert set(keys) <= set(by_key)
        counts = np.array([keys.count(k) for k in by_key])
        expected = 10_000 / len(retained)
        chi_square = ((counts - expected) ** 2 / expected).sum()
        assert chi_square < 3 * len(retained) + 30, (chi_square, counts)


def test_extra_fields_come_with_their_transition():
    env = make_env(None, MODES[0])
    buffer = ReplayBuffer(env, 16, seed=0, extra_fields={"value": ((2,), np.float32)})
    obs, _ = env.reset(seed=0)
    for step in range(12):
        next_obs, reward, terminated, truncated, _ = env.step(0)
        value = np.array([step, -step], dtype=np.float32)
        buffer.add_trajectory(obs, 0, reward, next_obs, terminated, truncated, value=value)
        obs = env.reset()[0] if terminated or truncated else next_obs
    batch = buffer.sample(50)
    stored = buffer.all()
    for i in range(50):
        match = np.flatnonzero((stored.observations == batch.observations[i]).all(axis=1))
        assert len(match) == 1
        np.testing.assert_array_equal(batch.extras["value"][i], stored.extras["value"][match[0]])


@pytest.mark.parametrize("num_envs", [None, 3])
@pytest.mark.parametrize("flatten_env", [False, True])
def test_torch_sample_is_the_numpy_sample(num_envs, flatten_env):
    pair = []
    for dtype in ("numpy", "torch"):
        buffer, _, runner = build(num_envs, dict_obs=True, seed=3)
        runner.add(25)
        pair.append(buffer.sample(8, flatten_env=flatten_env, dtype=dtype))
    as_numpy, as_torch = pair
    for name in ("actions", "rewards", "dones"):
        tensor = getattr(as_torch, name)
        assert isinstance(tensor, torch.Tensor)
        np.testing.assert_array_equal(tensor.numpy(), getattr(as_numpy, name))
    for key in ("tag", "parity"):
        for name in ("observations", "next_observations"):
            tensor = getattr(as_torch, name)[key]
            assert isinstance(tensor, torch.Tensor)
            np.testing.assert_array_equal(tensor.numpy(), getattr(as_numpy, name)[key])


def test_shapes_follow_the_env_axis_options():
    buffer, _, runner = build(3)
    runner.add(20)
    assert buffer.sample(5).observations.shape == (3, 5, 3)
    assert buffer.sample(5, flatten_env=True).observations.shape == (5, 3)
    single, _, runner = build(None)
    runner.add(20)
    assert single.sample(5).rewards.shape == (5, 1)


def test_a_sub_env_without_transitions_raises_before_drawing():
    buffer = ReplayBuffer(make_env(2, MODES[0]), 8, seed=0)
    state = buffer.rng.bit_generator.state
    with pytest.raises(RuntimeError, match=r"no transition for sub-envs \[0, 1\]"):
        draw_pairs(buffer.rng, buffer._ring, buffer._store.packed, 4)
    assert buffer.rng.bit_generator.state == state


def test_next_observations_wrap_around_through_the_mirror_row():
    # 12 steps of one episode in a ring of 4 rows: the write position is back at row 0, so the
    # transition in row 3 has its next observation in row 0.
    buffer = ReplayBuffer(make_env(None, MODES[0]), 4, seed=0)
    for step in range(12):
        obs, next_obs = np.full(3, step, np.float32), np.full(3, step + 1, np.float32)
        buffer.add_trajectory(obs, 0, 1.0, next_obs, False, False)
    assert buffer._ring.pos[0] == 0 and buffer._ring.valid[3, 0]
    pairs = draw_pairs(buffer.rng, buffer._ring, buffer._store.packed, 200)
    observations, next_observations = (
        buffer._store.packed.pair_readers[name](pairs)[:, 0] for name in PAIR
    )
    assert set(observations) == {9, 10, 11}
    np.testing.assert_array_equal(next_observations, observations + 1)


def test_the_generator_is_splitmix64():
    # The reference outputs of SplitMix64 from state 0 (Vigna's splitmix64.c).
    state, first = _splitmix64(np.uint64(0))
    _, second = _splitmix64(state)
    assert (int(first), int(second)) == (0xE220A8397B1DCDAF, 0x6E789E6AA1B965F4)


def test_the_buffer_seed_fixes_every_sample():
    samples = []
    for _ in range(2):
        buffer, _, runner = build(2, seed=5)
        runner.add(30)
        samples.append([buffer.sample(16).observations for _ in range(3)])
    for first, second in zip(*samples, strict=True):
        np.testing.assert_array_equal(first, second)
    assert not np.array_equal(samples[0][0], samples[0][1])


def test_one_sub_env_is_drawn_as_in_a_draw_of_every_sub_env():
    buffer, _, runner = build(3, max_len=3)
    runner.add(30)
    ring = buffer._ring
    first = draw_rows(np.random.default_rng(7), ring, 40)[0]
    np.testing.assert_array_equal(draw_rows_of(np.random.default_rng(7), ring, 0, 40), first)
    for env in range(3):
        rows = draw_rows_of(np.random.default_rng(env), ring, env, 200)
        assert ring.valid[rows, env].all()


def test_a_sub_env_without_transitions_cannot_be_drawn_alone():
    buffer = ReplayBuffer(make_env(2, MODES[0]), 8, seed=0)
    with pytest.raises(RuntimeError, match="sub-env 1 holds no transition"):
        draw_rows_of(buffer.rng, buffer._ring, 1, 4)
