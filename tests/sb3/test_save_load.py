"""SB3's save_replay_buffer / load_replay_buffer with pearll.sb3 buffers, then learning resumes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch as th
from stable_baselines3 import DQN

from pearll.sb3 import HerReplayBuffer, PrioritizedDQN, ReplayBuffer
from tests.fixtures import sb3_goal_vec_env, sb3_vec_env


def held(buffer):
    batch = buffer.pearll_buffer.all(flatten_env=True)
    obs, next_obs = batch.observations, batch.next_observations
    if isinstance(obs, dict):
        obs, next_obs = obs["observation"], next_obs["observation"]
    return sorted(obs[i].tobytes() + next_obs[i].tobytes() for i in range(len(obs)))


@pytest.mark.parametrize("algo", ["dqn", "prioritized", "her"])
def test_saved_buffer_reloads_and_learning_resumes(algo, tmp_path):
    kwargs = {"learning_starts": 40, "buffer_size": 1_000, "seed": 0, "device": "cpu"}
    if algo == "her":
        env, policy, cls = sb3_goal_vec_env(), "MultiInputPolicy", DQN
        kwargs |= {"replay_buffer_class": HerReplayBuffer}
    elif algo == "prioritized":
        env, policy, cls = sb3_vec_env(1), "MlpPolicy", PrioritizedDQN
    else:
        env, policy, cls = sb3_vec_env(1), "MlpPolicy", DQN
        kwargs |= {"replay_buffer_class": ReplayBuffer, "optimize_memory_usage": True}
    model = cls(policy, env, **kwargs)
    model.learn(100)
    model.save(tmp_path / "model")
    model.save_replay_buffer(tmp_path / "buffer")
    before = model.replay_buffer
    if algo == "prioritized":
        expected_weights = copy.deepcopy(before).sample(32).weights

    loaded = cls.load(tmp_path / "model", env=env, device="cpu")
    loaded.load_replay_buffer(tmp_path / "buffer")
    buffer = loaded.replay_buffer
    assert type(buffer) is type(before)
    assert buffer.device == th.device("cpu")
    assert (buffer.pos, buffer.full, buffer.size()) == (before.pos, before.full, before.size())
    assert held(buffer) == held(before)
    if algo == "prioritized":  # priorities and the generator come back as they were
        assert th.equal(buffer.sample(32).weights, expected_weights)
    if algo == "her":
        assert buffer.env is env  # set_env by load_replay_buffer
        assert buffer.pearll_buffer.counts.sum() == before.pearll_buffer.counts.sum()

    loaded.learn(100, reset_num_timesteps=False)
    assert buffer.size() == loaded.num_timesteps >= 200
    assert np.isfinite(loaded.logger.name_to_value["train/loss"])
