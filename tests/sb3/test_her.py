"""pearll.sb3.HerReplayBuffer against SB3's HerReplayBuffer: the same relabelling rules.

GoalTaggedEnv's achieved goals are ``[episode, step]``, so each relabelled goal says which
step it came from; the rule each strategy must follow is checked on both buffers' samples.
"""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from stable_baselines3 import DQN
from stable_baselines3.common.vec_env import DummyVecEnv
from stable_baselines3.her.her_replay_buffer import HerReplayBuffer as SB3HerReplayBuffer

from pearll.sb3 import HerReplayBuffer
from tests.fixtures import GoalTaggedEnv, sb3_goal_vec_env, sb3_steps


def feed(buffers, venv, steps):
    lengths = {}  # episode -> its number of steps
    for obs, next_obs, action, reward, done, infos in sb3_steps(venv, steps):
        for buffer in buffers:
            buffer.add(copy.deepcopy(obs), copy.deepcopy(next_obs), action, reward, done, infos)
        episode, step = next_obs["achieved_goal"][0]
        lengths[int(episode)] = max(lengths.get(int(episode), 0), int(step))
    return lengths


def pair(strategy, n_sampled_goal=4):
    venv = sb3_goal_vec_env()
    args = (500, venv.observation_space, venv.action_space, venv)
    kwargs = {"device": "cpu", "goal_selection_strategy": strategy,
              "n_sampled_goal": n_sampled_goal}  # fmt: skip
    return venv, SB3HerReplayBuffer(*args, **kwargs), HerReplayBuffer(*args, seed=0, **kwargs)


def check_rules(samples, strategy, lengths, finished_only):
    obs, next_obs = samples.observations, samples.next_observations
    episode, step = obs["observation"][:, 0].numpy(), obs["observation"][:, 1].numpy()
    goal = obs["desired_goal"].numpy()
    assert np.array_equal(goal, next_obs["desired_goal"].numpy())
    relabelled = goal[:, 1] != -1
    assert np.array_equal(goal[relabelled, 0], episode[relabelled])  # its own episode
    goal_step = goal[relabelled, 1]
    last = np.array([lengths[int(e)] for e in episode[relabelled]])
    at = step[relabelled]
    if strategy == "future":
        assert ((goal_step >= at + 1) & (goal_step <= last)).all()
    elif strategy == "final":
        assert (goal_step == last).all() if finished_only else (goal_step <= last).all()
    else:
        assert ((goal_step >= 1) & (goal_step <= last)).all()
    achieved = next_obs["achieved_goal"].numpy()
    expected = -(achieved != goal).any(axis=1).astype(np.float32)
    np.testing.assert_array_equal(samples.rewards.numpy()[:, 0], expected)
    return relabelled.mean()


@pytest.mark.parametrize("strategy", ["future", "final", "episode"])
def test_relabelling_follows_sb3s_rules(strategy):
    venv, theirs, ours = pair(strategy)
    lengths = feed([theirs, ours], venv, 80)
    np.random.seed(0)
    share_theirs = check_rules(theirs.sample(400), strategy, lengths, finished_only=True)
    share_ours = check_rules(ours.sample(400), strategy, lengths, finished_only=False)
    assert share_ours == pytest.approx(0.8, abs=0.01)
    assert share_theirs == pytest.approx(0.8, abs=0.05)  # SB3 may relabel a goal to itself


def test_finished_episodes_get_their_final_goal():
    venv, _, ours = pair("final")
    lengths = feed([ours], venv, 60)
    ours.truncate_last_trajectory()  # now every stored episode is finished
    check_rules(ours.sample(300), "final", lengths, finished_only=True)


def test_samples_before_the_first_episode_ends_which_sb3_cannot():
    venv, theirs, ours = pair("future")
    feed([theirs, ours], venv, 1)
    with pytest.raises(RuntimeError, match="Unable to sample"):
        theirs.sample(4)
    assert ours.sample(4).rewards.shape == (4, 1)


def test_pickled_buffer_has_no_env_until_set_env():
    venv, _, ours = pair("future")
    feed([ours], venv, 30)
    loaded = pickle.loads(pickle.dumps(ours))
    assert loaded.env is None
    with pytest.raises(RuntimeError, match="set_env"):
        loaded.sample(10)
    loaded.set_env(venv)
    assert loaded.sample(10).rewards.shape == (10, 1)


class InfoGoalEnv(GoalTaggedEnv):
    """GoalTaggedEnv whose step infos carry ``tag`` = 100 * episode + step, and whose reward
    depends on the info: ``-tag / 1000`` where the goals differ, else 0."""

    def step(self, action):
        obs, reward, terminated, truncated, _ = super().step(action)
        return obs, reward, terminated, truncated, {"tag": 100 * self.episode + self.t}

    def compute_reward(self, achieved_goal, desired_goal, info):
        tags = np.array([i["tag"] for i in info], dtype=np.float32)
        differ = (np.asarray(achieved_goal) != np.asarray(desired_goal)).any(axis=-1)
        return -differ.astype(np.float32) * tags / 1000


def check_info_rewards(samples):
    """Every relabelled sample's reward is compute_reward with its own transition's info."""
    episode, step = samples.observations["observation"].numpy().T
    goal = samples.observations["desired_goal"].numpy()
    relabelled = goal[:, 1] != -1
    tags = 100 * episode + step + 1  # the info of the step from (episode, step)
    achieved = samples.next_observations["achieved_goal"].numpy()
    expected = -(achieved != goal).any(axis=1).astype(np.float32) * tags / 1000
    np.testing.assert_allclose(samples.rewards.numpy()[relabelled, 0], expected[relabelled])
    assert not (samples.rewards.numpy()[relabelled, 0] == 0).all()  # infos were used
    return relabelled.mean()


@pytest.mark.parametrize("num_envs", [1, 2])
def test_copy_info_dict_gives_compute_reward_each_transitions_info_as_sb3(num_envs):
    venv = DummyVecEnv([lambda: InfoGoalEnv() for _ in range(num_envs)])
    args = (80 * num_envs, venv.observation_space, venv.action_space, venv)
    kwargs = {"device": "cpu", "n_envs": num_envs, "copy_info_dict": True}
    theirs = SB3HerReplayBuffer(*args, **kwargs)
    ours = HerReplayBuffer(*args, seed=0, **kwargs)
    feed([theirs, ours], venv, 150)  # wraps both rings
    np.random.seed(0)
    assert check_info_rewards(theirs.sample(400)) > 0.7
    samples = ours.sample(400)
    assert set(samples.observations) == set(venv.observation_space.spaces)  # no extra key
    assert check_info_rewards(samples) == pytest.approx(0.8, abs=0.01)
    loaded = pickle.loads(pickle.dumps(ours))  # SB3's save_replay_buffer
    loaded.set_env(venv)
    check_info_rewards(loaded.sample(100))


def test_copy_info_dict_survives_a_restart_and_refuses_pearlls_checkpoint(tmp_path):
    venv = DummyVecEnv([InfoGoalEnv])
    ours = HerReplayBuffer(200, venv.observation_space, venv.action_space, venv, seed=0,
                           device="cpu", copy_info_dict=True)  # fmt: skip
    feed([ours], venv, 20)
    feed([ours], DummyVecEnv([InfoGoalEnv]), 20)  # a fresh env: the episodes start over
    assert ours.pearll_buffer.truncateds.sum() >= 1  # the running episode was ended
    check_info_rewards(ours.sample(200))
    with pytest.raises(ValueError, match="copy_info_dict"):
        ours.save_checkpoint(tmp_path / "her")


def test_dqn_with_her():
    venv = sb3_goal_vec_env()
    model = DQN(
        "MultiInputPolicy", venv, replay_buffer_class=HerReplayBuffer,
        replay_buffer_kwargs={"n_sampled_goal": 4, "seed": 0}, learning_starts=40,
        buffer_size=1_000, seed=0, device="cpu",
    )  # fmt: skip
    model.learn(150)
    assert isinstance(model.replay_buffer, SB3HerReplayBuffer)
    assert model.replay_buffer.size() == model.num_timesteps >= 150


def test_several_sub_envs():
    venv = sb3_goal_vec_env(num_envs=3)
    buffer = HerReplayBuffer(300, venv.observation_space, venv.action_space, venv, n_envs=3,
                             device="cpu", seed=0, goal_selection_strategy="future")  # fmt: skip
    lengths = feed([buffer], venv, 40)
    samples = buffer.sample(90)
    assert samples.rewards.shape == (90, 1)
    # Sub-envs share episode numbers here, so check only what holds for all: a goal from a step
    # after the sample's own, and rewards from compute_reward.
    goal = samples.observations["desired_goal"].numpy()
    relabelled = goal[:, 1] != -1
    assert (goal[relabelled, 1] > samples.observations["observation"].numpy()[relabelled, 1]).all()
    assert 0.7 < relabelled.mean() <= 0.8
    assert lengths
