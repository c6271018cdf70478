"""pearll.sb3 buffers in pearll's crash-safe checkpoint format: saved with a model, reloaded,
and learning resumes (``model.learn`` continues from the loaded buffer)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch as th
from stable_baselines3 import DQN
from stable_baselines3.common.vec_env import DummyVecEnv, VecFrameStack

import pearll.sb3
from pearll.sb3 import HerReplayBuffer, NStepReplayBuffer, PrioritizedDQN, ReplayBuffer
from tests.fixtures import ImageEnv, sb3_goal_vec_env, sb3_vec_env


def held(buffer):
    batch = buffer.pearll_buffer.all(flatten_env=True)
    obs, next_obs = batch.observations, batch.next_observations
    if isinstance(obs, dict):
        obs, next_obs = obs["observation"], next_obs["observation"]
    return sorted(
        obs[i].tobytes() + next_obs[i].tobytes() + batch.rewards[i].tobytes()
        for i in range(len(obs))
    )


def model_for(algo, env):
    kwargs = {"learning_starts": 40, "buffer_size": 1_000, "seed": 0, "device": "cpu"}
    if algo == "her":
        return DQN("MultiInputPolicy", env, replay_buffer_class=HerReplayBuffer, **kwargs)
    if algo == "prioritized":
        return PrioritizedDQN("MlpPolicy", env, **kwargs)
    if algo == "nstep":
        return DQN("MlpPolicy", env, replay_buffer_class=NStepReplayBuffer,
                   replay_buffer_kwargs={"n_steps": 3}, **kwargs)  # fmt: skip
    if algo == "frames":
        policy = {"normalize_images": False, "features_extractor_kwargs": {"features_dim": 8}}
        return DQN("CnnPolicy", env, replay_buffer_class=ReplayBuffer, optimize_memory_usage=True,
                   replay_buffer_kwargs={"frame_stack": 4}, policy_kwargs=policy,
                   **kwargs)  # fmt: skip
    return DQN("MlpPolicy", env, replay_buffer_class=ReplayBuffer, optimize_memory_usage=True,
               **kwargs)  # fmt: skip


def env_for(algo):
    if algo == "her":
        return sb3_goal_vec_env()
    if algo == "frames":  # 36x36 images: the smallest NatureCNN takes
        return VecFrameStack(DummyVecEnv([lambda: ImageEnv((36, 36, 1), max_len=20)]), 4)
    return sb3_vec_env(2)


@pytest.mark.parametrize("algo", ["dqn", "nstep", "prioritized", "her", "frames"])
def test_model_and_checkpointed_buffer_reload_and_learning_resumes(algo, tmp_path):
    env = env_for(algo)
    model = model_for(algo, env)
    model.learn(100)
    model.save(tmp_path / "model")
    before = model.replay_buffer
    before.save_checkpoint(tmp_path / "buffer")
    twin = copy.deepcopy(before)
    if algo == "her":
        twin.set_env(env)  # SB3 drops the env when copying
    expected = twin.sample(16)  # the generator's state is saved

    loaded = type(model).load(tmp_path / "model", env=env, device="cpu")
    pearll.sb3.load_replay_buffer(loaded, tmp_path / "buffer", truncate_last_traj=False)
    buffer = loaded.replay_buffer
    assert type(buffer) is type(before)
    assert buffer.device == th.device("cpu")
    assert buffer.size() == before.size() and buffer.n_envs == before.n_envs
    assert held(buffer) == held(before)
    sample = buffer.sample(16)
    for field in ("actions", "rewards", "dones"):
        assert th.equal(getattr(sample, field), getattr(expected, field))
    if algo == "prioritized":
        assert th.equal(sample.weights, expected.weights)

    loaded.learn(100, reset_num_timesteps=False)
    assert loaded.replay_buffer is buffer
    assert buffer.size() * buffer.n_envs == loaded.num_timesteps >= 200
    assert np.isfinite(loaded.logger.name_to_value["train/loss"])


def test_a_loaded_buffer_continues_an_episode_it_can_and_ends_one_it_cannot(tmp_path):
    venv = sb3_vec_env(1, max_len=50, p_terminate=1.0)
    from tests.fixtures import sb3_steps

    ours = ReplayBuffer(500, venv.observation_space, venv.action_space, device="cpu", seed=0)
    steps = sb3_steps(venv, 30)
    for _ in range(10):
        ours.add(*next(steps))
    ours.save_checkpoint(tmp_path / "b")
    resumed = ReplayBuffer.load_checkpoint(tmp_path / "b", device="cpu")
    restarted = ReplayBuffer.load_checkpoint(tmp_path / "b", device="cpu")
    assert (resumed.pos, resumed.full, resumed.size()) == (ours.pos, ours.full, 10)
    rest = list(steps)
    for step in rest:  # the same env, going on: no episode is ended
        resumed.add(*step)
        ours.add(*step)
    assert held(resumed) == held(ours)
    assert resumed.pearll_buffer.truncateds.sum() == ours.pearll_buffer.truncateds.sum()
    fresh = sb3_vec_env(1, max_len=50, p_terminate=1.0)  # a new env: the running episode ends
    for step in sb3_steps(fresh, 5, seed=3):
        restarted.add(*step)
    assert restarted.pearll_buffer.truncateds.sum() == 1


def test_checkpoint_of_another_class_or_arguments_is_refused(tmp_path):
    venv = sb3_vec_env(1)
    ours = ReplayBuffer(100, venv.observation_space, venv.action_space, device="cpu", seed=0)
    ours.save_checkpoint(tmp_path / "b")
    with pytest.raises(TypeError, match="ReplayBuffer"):
        NStepReplayBuffer.load_checkpoint(tmp_path / "b")
    with pytest.raises(ValueError, match="rows per sub-env"):
        ReplayBuffer.load_checkpoint(tmp_path / "b", min_episode_length=10)
    with pytest.raises(FileNotFoundError, match=r"not a pearll\.sb3 checkpoint"):
        ReplayBuffer.load_checkpoint(tmp_path)
