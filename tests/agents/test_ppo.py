"""PPO smoke tests: a few hundred env steps run, log episodes and call back (seconds)."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("torch")

from pearll.agents import PPOConfig, evaluate, train_ppo

SMALL = PPOConfig(num_steps=32, minibatch_size=32, epochs=2)


def test_train_ppo_runs_logs_episodes_and_calls_back():
    calls = []
    result = train_ppo(
        total_steps=512,
        seed=3,
        num_envs=4,
        callback=lambda s, r: calls.append((s, r)),
        config=SMALL,
    )
    assert result.env_steps == 512
    assert result.updates == 4
    assert result.episodes == calls
    assert len(calls) > 5  # random CartPole episodes last about 20 steps
    steps = [s for s, _ in calls]
    assert steps == sorted(steps) and steps[-1] <= 512
    assert all(r >= 1 for _, r in calls)
    returns = evaluate(result.agent, episodes=2)
    assert len(returns) == 2 and all(r >= 1 for r in returns)


def test_train_ppo_is_reproducible_from_its_seed():
    first = train_ppo(total_steps=256, seed=5, num_envs=2, config=SMALL)
    second = train_ppo(total_steps=256, seed=5, num_envs=2, config=SMALL)
    assert first.episodes == second.episodes
    obs = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    np.testing.assert_array_equal(first.agent.act(obs), second.agent.act(obs))


def test_target_return_stops_training_early():
    result = train_ppo(total_steps=20_000, seed=0, num_envs=4, target_return=1.0, config=SMALL)
    assert len(result.episodes) >= 20
    assert result.env_steps < 20_000
