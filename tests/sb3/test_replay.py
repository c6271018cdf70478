"""pearll.sb3's ReplayBuffer, DictReplayBuffer and NStepReplayBuffer against SB3's own classes.

Both are fed the same steps, as SB3's off-policy loop feeds them (terminal observations
substituted, ``TimeLimit.truncated`` in infos); then the transitions held, the samples' shapes,
dtypes and devices, normalisation, timeouts and n-step discounts are compared. TaggedEnv's
observations encode (tag, episode, step), so a transition is checked by value alone.
"""

from __future__ import annotations

import copy
import pickle
from collections import Counter

import numpy as np
import pytest
import torch as th
from gymnasium import spaces
from stable_baselines3 import DQN
from stable_baselines3.common import buffers as sb3_buffers
from stable_baselines3.common.vec_env import VecNormalize

from pearll.sb3 import DictReplayBuffer, NStepReplayBuffer, ReplayBuffer
from tests.fixtures import sb3_steps, sb3_vec_env


def feed(buffers, venv, num_steps, seed=0):
    """Feed every buffer the same steps; return the true transitions as (obs, action, reward,
    next obs, terminated) tuples."""
    truth = []
    for obs, next_obs, action, reward, done, infos in sb3_steps(venv, num_steps, seed):
        for buffer in buffers:
            buffer.add(copy.deepcopy(obs), copy.deepcopy(next_obs), action, reward, done, infos)
        for i in range(venv.num_envs):
            terminated = done[i] and not infos[i].get("TimeLimit.truncated", False)
            truth.append((obs[i].tobytes(), int(action[i]), float(reward[i]),
                             next_obs[i].tobytes(), float(terminated)))  # fmt: skip
    return truth


def held_by_sb3(buffer):
    """SB3's held transitions (a non-memory-optimised buffer) as a Counter of tuples."""
    rows = buffer.buffer_size if buffer.full else buffer.pos
    held = Counter()
    for row in range(rows):
        for env in range(buffer.n_envs):
            done = buffer.dones[row, env] * (1 - buffer.timeouts[row, env])
            held[(buffer.observations[row, env].tobytes(), int(buffer.actions[row, env, 0]),
                  float(buffer.rewards[row, env]), buffer.next_observations[row, env].tobytes(),
                  float(done))] += 1  # fmt: skip
    return held


def held_by_ours(buffer):
    batch = buffer.pearll_buffer.all(flatten_env=True)
    return Counter(
        (batch.observations[i].tobytes(), int(batch.actions[i, 0]), float(batch.rewards[i, 0]),
         batch.next_observations[i].tobytes(), float(batch.dones[i, 0]))
        for i in range(len(batch.rewards))
    )  # fmt: skip


def make_pair(num_envs, buffer_size, **ours):
    venv = sb3_vec_env(num_envs)
    args = (buffer_size, venv.observation_space, venv.action_space)
    theirs = sb3_buffers.ReplayBuffer(*args, device="cpu", n_envs=num_envs)
    return venv, theirs, ReplayBuffer(*args, device="cpu", n_envs=num_envs, seed=0, **ours)


@pytest.mark.parametrize("num_envs", [1, 3])
def test_same_transitions_as_sb3_before_and_after_the_ring_wraps(num_envs):
    venv, theirs, ours = make_pair(num_envs, buffer_size=60 * num_envs)
    truth = feed([theirs, ours], venv, 40)
    assert held_by_ours(ours) == held_by_sb3(theirs) == Counter(truth)
    assert (ours.pos, ours.full, ours.size()) == (theirs.pos, theirs.full, theirs.size())
    truth = feed([theirs, ours], venv, 200, seed=1)  # wraps both rings
    assert theirs.full and ours.full and ours.pos == theirs.pos
    ours_held, sb3_held = held_by_ours(ours), held_by_sb3(theirs)
    assert ours_held & sb3_held == sb3_held  # ours holds at least what SB3 holds...
    assert ours.size() >= theirs.size()
    produced = Counter(truth)
    assert ours_held & produced == ours_held  # ...and only transitions the env produced


def test_samples_match_sb3_in_shapes_dtypes_and_device():
    venv, theirs, ours = make_pair(2, buffer_size=100)
    feed([theirs, ours], venv, 30)
    a, b = theirs.sample(9), ours.sample(9)
    for name in ("observations", "actions", "next_observations", "dones", "rewards"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x.shape, x.dtype, x.device) == (y.shape, y.dtype, y.device), name
    assert b.discounts is None
    # SB3 reassigns .device after loading a buffer: samples follow it.
    ours.device = th.device("meta")
    assert ours.sample(4).observations.device.type == "meta"


@pytest.mark.parametrize(
    ("space", "expected_dtype"),
    [
        (spaces.Box(-2.0, 2.0, (2,), np.float64), th.float32),
        (spaces.Box(-2.0, 2.0, (2,), np.float32), th.float32),
        (spaces.MultiDiscrete([3, 4]), th.int64),
    ],
)
def test_actions_are_stored_as_sb3_stores_them(space, expected_dtype):
    obs_space = spaces.Box(-1, 1, (3,), np.float32)
    theirs = sb3_buffers.ReplayBuffer(10, obs_space, space, device="cpu")
    ours = ReplayBuffer(10, obs_space, space, device="cpu", seed=0)
    # SAC/TD3 store actions rescaled to [-1, 1]: no range check against the env's bounds.
    action = np.array([[0.5, -1.0]]) if isinstance(space, spaces.Box) else np.array([[2, 3]])
    for buffer in (theirs, ours):
        buffer.add(np.zeros((1, 3)), np.ones((1, 3)), action, np.ones(1), np.zeros(1), [{}])
    a, b = theirs.sample(3), ours.sample(3)
    assert a.actions.dtype == b.actions.dtype == expected_dtype
    assert b.actions.shape == a.actions.shape
    np.testing.assert_array_equal(b.actions[0].numpy(), a.actions[0].numpy())


@pytest.mark.parametrize("handle_timeouts", [True, False])
def test_timeouts_bootstrap_unless_handling_is_off(handle_timeouts):
    obs_space, act_space = spaces.Box(-9, 9, (1,), np.float32), spaces.Discrete(2)
    kwargs = {"device": "cpu", "handle_timeout_termination": handle_timeouts}
    theirs = sb3_buffers.ReplayBuffer(10, obs_space, act_space, **kwargs)
    ours = ReplayBuffer(10, obs_space, act_space, seed=0, **kwargs)
    final = np.array([[7.0]])
    for buffer in (theirs, ours):
        buffer.add(np.zeros((1, 1)), final, np.zeros(1, np.int64), np.ones(1), np.ones(1),
                   [{"TimeLimit.truncated": True, "terminal_observation": final[0]}])  # fmt: skip
    a, b = theirs.sample(4), ours.sample(4)
    expected = 0.0 if handle_timeouts else 1.0
    assert a.dones.flatten().tolist() == b.dones.flatten().tolist() == [expected] * 4
    assert b.next_observations.flatten().tolist() == [7.0] * 4


def test_memory_saving_together_with_timeouts_which_sb3_refuses():
    venv = sb3_vec_env(2)
    args = (100, venv.observation_space, venv.action_space)
    with pytest.raises(ValueError, match="optimize_memory_usage"):
        sb3_buffers.ReplayBuffer(*args, n_envs=2, optimize_memory_usage=True)
    reference = sb3_buffers.ReplayBuffer(*args, device="cpu", n_envs=2)
    ours = ReplayBuffer(*args, n_envs=2, optimize_memory_usage=True, seed=0)
    feed([reference, ours], venv, 45)
    assert held_by_ours(ours) == held_by_sb3(reference)


def test_a_step_that_does_not_follow_on_ends_the_episode_there():
    venv, theirs, ours = make_pair(1, buffer_size=200)
    venv = sb3_vec_env(1, max_len=100, p_terminate=1.0)  # no truncation, still running at 10
    truth = feed([theirs, ours], venv, 10)
    assert not ours._episode_over[0]
    venv.reset()  # as a second learn() does: the next obs is no continuation
    ours.dones[(ours.pos - 1) % ours.buffer_size] = (
        True  # and SB3 may write this (memory-optimised)
    )
    truth += feed([theirs, ours], sb3_vec_env(1, p_terminate=1.0), 10, seed=5)
    assert held_by_ours(ours) == Counter(truth)  # nothing rewritten across the restart
    # The restart's step is a truncation (it bootstraps); an SB3 memory-optimised buffer would
    # have rewritten its next obs into the new episode's first.
    assert ours.pearll_buffer.truncateds.sum() == 1


def test_restart_detected_without_the_done_mark():
    venv, _, ours = make_pair(1, buffer_size=200)
    truth = feed([ours], venv, 7)
    truth += feed([ours], sb3_vec_env(1, max_len=3), 7, seed=3)  # a fresh env, same tags
    assert held_by_ours(ours) == Counter(truth)


def test_normalisation_through_vec_normalize_as_sb3():
    venv = sb3_vec_env(2)
    vec_norm = VecNormalize(sb3_vec_env(2), norm_obs=True, norm_reward=True)
    vec_norm.reset()
    for _ in range(30):
        vec_norm.step(np.zeros(2, dtype=np.int64))
    _, _, ours = make_pair(2, buffer_size=100)
    feed([ours], venv, 30)
    twin = copy.deepcopy(ours)  # the same generator state: the same draws
    normalised, raw = ours.sample(16, env=vec_norm), twin.sample(16)
    expected = vec_norm.normalize_obs(raw.observations.numpy())
    np.testing.assert_allclose(normalised.observations.numpy(), expected, rtol=1e-6)
    expected = vec_norm.normalize_obs(raw.next_observations.numpy())
    np.testing.assert_allclose(normalised.next_observations.numpy(), expected, rtol=1e-6)
    expected = vec_norm.normalize_reward(raw.rewards.numpy())
    np.testing.assert_allclose(normalised.rewards.numpy(), expected, rtol=1e-6)
    assert normalised.rewards.dtype == th.float32


def test_seeded_and_global_seeded_draws_repeat():
    def samples(**kwargs):
        venv, _, ours = make_pair(2, buffer_size=100, **kwargs)
        feed([ours], venv, 20)
        return ours.sample(11).observations

    assert th.equal(samples(), samples())  # make_pair passes seed=0
    np.random.seed(3)
    first = ReplayBuffer(10, spaces.Box(0, 1, (1,)), spaces.Discrete(2)).pearll_buffer.rng.random()
    np.random.seed(3)
    again = ReplayBuffer(10, spaces.Box(0, 1, (1,)), spaces.Discrete(2)).pearll_buffer.rng.random()
    assert first == again


def test_batch_size_not_a_multiple_of_n_envs():
    venv, _, ours = make_pair(3, buffer_size=90)
    feed([ours], venv, 20)
    assert ours.sample(7).rewards.shape == (7, 1)


def test_reset_and_pickle_round_trip():
    venv, _, ours = make_pair(2, buffer_size=50)
    feed([ours], venv, 20)
    copied = pickle.loads(pickle.dumps(ours))
    assert held_by_ours(copied) == held_by_ours(ours)
    ours.reset()
    assert (ours.pos, ours.full, ours.size()) == (0, False, 0)


def test_n_step_discounts_match_sb3_on_episodes_without_restarts():
    venv = sb3_vec_env(1, max_len=8)
    args = (500, venv.observation_space, venv.action_space)
    theirs = sb3_buffers.NStepReplayBuffer(*args, device="cpu", n_steps=3, gamma=0.9)
    ours = NStepReplayBuffer(*args, device="cpu", n_steps=3, gamma=0.9, seed=0)
    feed([theirs, ours], venv, 60)

    def by_obs(samples):
        return {
            samples.observations[i].numpy().tobytes(): (
                round(float(samples.rewards[i]), 4), round(float(samples.discounts[i]), 5),
                float(samples.dones[i]), samples.next_observations[i].numpy().tobytes(),
            )
            for i in range(len(samples.rewards))
        }  # fmt: skip

    np.random.seed(0)
    a, b = by_obs(theirs.sample(400)), by_obs(ours.sample(400))
    common = set(a) & set(b)
    assert len(common) > 30
    for key in common:
        assert a[key] == b[key]


def test_dict_replay_buffer_matches_sb3_and_accepts_memory_saving():
    venv = sb3_vec_env(2, dict_obs=True)
    args = (100, venv.observation_space, venv.action_space)
    theirs = sb3_buffers.DictReplayBuffer(*args, device="cpu", n_envs=2)
    ours = DictReplayBuffer(*args, device="cpu", n_envs=2, optimize_memory_usage=True, seed=0)
    for obs, next_obs, action, reward, done, infos in sb3_steps(venv, 30):
        for buffer in (theirs, ours):
            buffer.add(copy.deepcopy(obs), copy.deepcopy(next_obs), action, reward, done, infos)
    a, b = theirs.sample(6), ours.sample(6)
    for key in a.observations:
        x, y = a.observations[key], b.observations[key]
        assert (x.shape, x.dtype) == (y.shape, y.dtype), key
    held = ours.pearll_buffer.all(flatten_env=True)
    for i in range(len(held.rewards)):  # reward = step, and the next obs is one step on
        assert held.next_observations["tag"][i, 2] == held.rewards[i, 0]
        assert held.next_observations["tag"][i, 2] == held.observations["tag"][i, 2] + 1


def test_dqn_takes_it_as_replay_buffer_class():
    model = DQN(
        "MlpPolicy", sb3_vec_env(1), replay_buffer_class=ReplayBuffer, learning_starts=50,
        buffer_size=1_000, seed=0, device="cpu",
    )  # fmt: skip
    model.learn(200)
    assert isinstance(model.replay_buffer, sb3_buffers.ReplayBuffer)
    assert model.replay_buffer.size() == 200


@pytest.mark.parametrize("num_envs", [1, 2])
def test_discrete_observations_come_back_as_sb3s(num_envs):
    obs_space, act_space = spaces.Discrete(5), spaces.Discrete(2)
    theirs = sb3_buffers.ReplayBuffer(20, obs_space, act_space, device="cpu", n_envs=num_envs)
    ours = ReplayBuffer(20, obs_space, act_space, device="cpu", n_envs=num_envs, seed=0)
    obs = np.arange(num_envs)
    for buffer in (theirs, ours):
        for step in range(3):
            buffer.add(obs + step, obs + step + 1, np.zeros(num_envs, np.int64),
                       np.ones(num_envs), np.zeros(num_envs), [{}] * num_envs)  # fmt: skip
    a, b = theirs.sample(6), ours.sample(6)
    assert (a.observations.shape, a.observations.dtype) == (
        b.observations.shape,
        b.observations.dtype,
    )
    assert th.all(b.next_observations == b.observations + 1)
