"""Non-finite rewards (NaN, inf, or beyond float32's range) are refused by every add path
before anything is written; every finite float32 reward is accepted by every path (issue 13,
items 9 and 15)."""

from __future__ import annotations

import numpy as np
import pytest

from pearll.buffers import PrioritizedReplayBuffer, ReplayBuffer, RolloutBuffer
from tests.fixtures import MODES, make_env
from tests.reference import ReferenceBuffer, Runner
from tests.state import assert_same_state

BAD = [np.inf, -np.inf, np.nan, 1e39, -1e39, 10**40, 10**400, np.float64(3.5e38)]
GOOD = [2**70, -(2**70), float(np.finfo(np.float32).max), 1e-45, 0, True]
KINDS = [
    (ReplayBuffer, {"n_step": 3, "gamma": 0.9}),
    (PrioritizedReplayBuffer, {}),
    (RolloutBuffer, {}),
]


def twins(cls, kwargs, num_envs, mode=MODES[0]):
    """Two identical buffers after the same seeded steps."""
    pair = []
    for _ in range(2):
        env = make_env(num_envs, mode)
        buffer = cls(env, 12, seed=0, **kwargs)
        Runner(env, buffer, ReferenceBuffer(num_envs or 1, 12, cls.spare_rows), seed=0).add(7)
        pair.append(buffer)
    return pair


def one_step(num_envs, reward):
    """Arguments of add_trajectory with ``reward`` for every sub-env."""
    if num_envs is None:
        obs = np.zeros(3, np.float32)
        return obs, 0, reward, obs, False, False
    obs = np.zeros((num_envs, 3), np.float32)
    rewards = np.array([reward] * num_envs, dtype=object if isinstance(reward, int) else None)
    actions, flags = np.zeros(num_envs, np.int64), np.zeros(num_envs, bool)
    return obs, actions, rewards, obs, flags, flags


def batch_of(num_envs, reward, steps=3):
    """Arguments of add_batch_trajectories, ``reward`` at the last of ``steps`` steps."""
    lead = (steps,) if num_envs is None else (steps, num_envs)
    obs = np.zeros((*lead, 3), np.float32)
    rewards = np.ones(lead).tolist()
    rewards[-1] = reward if num_envs is None else [reward] * num_envs
    flags = np.zeros(lead, bool)
    return obs, np.zeros(lead, np.int64), rewards, obs, flags, flags


@pytest.mark.parametrize(("cls", "kwargs"), KINDS)
@pytest.mark.parametrize("num_envs", [None, 2])
@pytest.mark.parametrize("reward", BAD, ids=repr)
@pytest.mark.filterwarnings("ignore:overflow encountered in cast:RuntimeWarning")
def test_a_non_finite_reward_is_refused_and_changes_nothing(cls, kwargs, num_envs, reward):
    buffer, twin = twins(cls, kwargs, num_envs)
    with pytest.raises(ValueError, match="reward: expected finite values within float32"):
        buffer.add_trajectory(*one_step(num_envs, reward))
    with pytest.raises(ValueError, match="reward: expected finite values within float32"):
        buffer.add_batch_trajectories(*batch_of(num_envs, reward))
    assert_same_state(buffer, twin)


@pytest.mark.parametrize(("cls", "kwargs"), KINDS)
@pytest.mark.parametrize("num_envs", [None, 2])
@pytest.mark.parametrize("reward", GOOD, ids=repr)
def test_every_finite_float32_reward_is_accepted_by_both_paths(cls, kwargs, num_envs, reward):
    """2**70 used to be accepted by add_trajectory but refused by add_batch_trajectories."""
    single, batched = twins(cls, kwargs, num_envs)
    single.add_trajectory(*one_step(num_envs, reward))
    batched.add_batch_trajectories(*batch_of(num_envs, reward, steps=1))
    assert_same_state(single, batched)
    assert single.last(1).rewards.reshape(-1)[-1] == np.float32(reward)


def test_an_infinite_reward_cannot_reach_a_neighbouring_episodes_return():
    """The issue's leak: episode A's last n-step return became NaN from episode B's inf
    (0 * inf); refusing B's reward keeps A's return what it was."""
    env = make_env(None)
    buffer = ReplayBuffer(env, 16, n_step=3, gamma=0.9)
    obs = np.zeros(3, np.float32)
    buffer.add_trajectory(obs, 0, 1.0, obs, True)  # episode A: one terminal step
    with pytest.raises(ValueError, match="finite"):
        buffer.add_trajectory(obs, 0, np.inf, obs, False)  # episode B's first step
    buffer.add_trajectory(obs, 0, 2.0, obs, False)
    assert np.isfinite(buffer.all().rewards).all()
    assert buffer.all().rewards[0, 0] == 1.0
