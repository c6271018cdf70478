"""The recurrent DQN trainer: runs on both replay buffers, sends sequence priorities back."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from pearll.agents.r2d2 import (  # noqa: E402
    STATE_FIELD,
    R2D2Config,
    RecurrentQNetwork,
    r2d2_extra_fields,
    train_r2d2,
)
from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer  # noqa: E402
from pearll.envs.cartpole_pomdp import cartpole_no_velocity  # noqa: E402
from tests.torch_threads import one_torch_thread  # noqa: E402, F401

FAST = R2D2Config(learning_starts=100, batch_size=8, length=5, burn_in=3, hidden_size=16)


def test_the_env_hides_the_velocities():
    env = cartpole_no_velocity()
    observation, _ = env.reset(seed=0)
    assert observation.shape == (2,) and env.observation_space.shape == (2,)


@pytest.mark.parametrize("buffer_class", [ReplayBuffer, PrioritizedReplayBuffer])
def test_trains_and_logs_episodes(buffer_class):
    env = cartpole_no_velocity()
    buffer = buffer_class(env, 1_000, seed=0, extra_fields=r2d2_extra_fields(FAST))
    before = [p.detach().clone() for p in RecurrentQNetwork(2, 2, 16).parameters()]
    torch.manual_seed(0)
    result = train_r2d2(env, buffer, 300, FAST, seed=0)
    assert result.env_steps == 300 and result.episodes
    after = list(result.q_network.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    if buffer_class is PrioritizedReplayBuffer:
        rows = buffer._ring.ordered_rows(0)
        priorities = buffer._tree.get(np.zeros_like(rows), rows)
        assert len(np.unique(priorities)) > 10  # sequence priorities came back


def test_callback_stops_training():
    env = cartpole_no_velocity()
    buffer = ReplayBuffer(env, 500, seed=0, extra_fields=r2d2_extra_fields(FAST))
    result = train_r2d2(env, buffer, 10_000, FAST, callback=lambda r: True)
    assert len(result.episodes) == 1


def test_stores_the_actors_state_before_each_step():
    env = cartpole_no_velocity()
    buffer = ReplayBuffer(env, 1_000, seed=0, extra_fields=r2d2_extra_fields(FAST))
    train_r2d2(env, buffer, 300, FAST, seed=0)
    batch = buffer.sample_sequences(64, 4, burn_in=0)
    states = batch.extras[STATE_FIELD]  # (B, T, 2 * hidden)
    assert states.shape == (64, 4, 2 * FAST.hidden_size)
    # An episode's first step was acted on from the zero state; later steps were not.
    first = batch.is_first & (batch.mask == 1)
    assert first.any() and (states[first] == 0).all()
    later = ~batch.is_first & (batch.mask == 1)
    assert (np.abs(states[later]).sum(axis=1) > 0).all()


def test_the_stored_state_is_the_network_state_after_the_previous_step():
    # No gradient step (learning_starts past the run): the network acting is the final one.
    env = cartpole_no_velocity()
    frozen = R2D2Config(**{**FAST.__dict__, "learning_starts": 10_000})
    buffer = ReplayBuffer(env, 1_000, seed=0, extra_fields=r2d2_extra_fields(frozen))
    network = train_r2d2(env, buffer, 300, frozen, seed=0).q_network
    batch = buffer.sample_sequences(32, 6, burn_in=0)
    states = torch.as_tensor(batch.extras[STATE_FIELD])
    hidden = frozen.hidden_size
    checked = 0
    for b in range(32):
        for t in range(5):
            if batch.mask[b, t + 1] == 0:
                break
            h, c = states[b, t, :hidden], states[b, t, hidden:]
            x = torch.as_tensor(batch.observations[b, t]).reshape(1, 1, -1)
            with torch.no_grad():
                _, (h1, c1) = network(x, (h.reshape(1, 1, -1), c.reshape(1, 1, -1)))
            after = torch.cat([h1.reshape(-1), c1.reshape(-1)])
            torch.testing.assert_close(states[b, t + 1], after, rtol=1e-5, atol=1e-6)
            checked += 1
    assert checked > 50


def test_stored_state_needs_the_extra_field_and_can_be_off():
    env = cartpole_no_velocity()
    with pytest.raises(ValueError, match="r2d2_extra_fields"):
        train_r2d2(env, ReplayBuffer(env, 500, seed=0), 10, FAST)
    off = R2D2Config(**{**FAST.__dict__, "stored_state": False})
    assert r2d2_extra_fields(off) == {}
    result = train_r2d2(env, ReplayBuffer(env, 500, seed=0), 300, off, seed=0)
    assert result.env_steps == 300


@pytest.mark.parametrize("n", [1, 2, 5])
def test_n_step_targets_match_a_naive_sum(n):
    from pearll.agents.r2d2 import n_step_targets

    rng = np.random.default_rng(n)
    size, steps, gamma = 16, 9, 0.9
    real = rng.integers(1, steps + 1, size)
    rewards = rng.normal(size=(size, steps))
    next_values = rng.normal(size=(size, steps))
    dones = np.zeros((size, steps))
    terminated = rng.random(size) < 0.5
    dones[np.arange(size), real - 1] = terminated
    got = n_step_targets(*(torch.as_tensor(x) for x in (rewards, dones, next_values, real)),
                         gamma, n).numpy()  # fmt: skip
    for b in range(size):
        for j in range(real[b]):
            m = min(n, real[b] - j)
            total = sum(gamma**i * rewards[b, j + i] for i in range(m))
            last = j + m - 1
            total += gamma**m * next_values[b, last] * (1 - dones[b, last])
            assert got[b, j] == pytest.approx(total)
