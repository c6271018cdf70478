"""Runners build the env and buffer, call the trainer, and hand back its log and buffer.

The trainers are replaced by the stand-ins in ``support.py``: these tests check the wiring, not
learning (that is the trainers' tests and the benchmarks).
"""

from __future__ import annotations

import inspect
import io

import pytest

from pearll.buffers import ReplayBuffer
from pearll.demo import runners
from pearll.demo.progress import ProgressReporter
from pearll.demo.runners import ALGOS, RunConfig, make_replay_buffer
from tests.demo.support import GOAL_ENV_ID, random_dqn_trainer, scripted_ppo_trainer


def config(algo="dqn", env_id="CartPole-v1", steps=300, **overrides) -> RunConfig:
    fields = {"seed": 0, "buffer": "replay", "n_step": 1, "buffer_size": 1_000}
    return RunConfig(algo, env_id, steps, **(fields | overrides))


def reporter(steps=300) -> ProgressReporter:
    return ProgressReporter(steps, file=io.StringIO())


def test_dqn_runner_trains_on_a_replay_buffer(monkeypatch):
    monkeypatch.setattr(runners, "train_dqn_agent", random_dqn_trainer)
    progress = reporter()
    result = runners.run_dqn(config(), progress)
    assert type(result.buffer) is ReplayBuffer
    assert result.buffer.buffer_size == 1_000
    assert len(result.buffer) == 300
    assert result.env_steps == 300
    assert result.episodes == progress.episodes and result.episodes
    assert progress.env_steps == 300  # per-step progress, not only at episode ends


def test_dqn_runner_on_a_goal_env_keeps_dict_observations(monkeypatch):
    monkeypatch.setattr(runners, "train_dqn_agent", random_dqn_trainer)
    result = runners.run_dqn(config(env_id=GOAL_ENV_ID), reporter())
    assert set(result.buffer.observations) == {"observation", "achieved_goal", "desired_goal"}
    assert all(e.success is not None for e in result.episodes)


def test_ppo_runner_reports_the_trainers_episodes(monkeypatch):
    monkeypatch.setattr(runners, "train_ppo_agent", scripted_ppo_trainer)
    progress = reporter()
    result = runners.run_ppo(config("ppo", buffer=None, buffer_size=None), progress)
    assert [e.episode_return for e in result.episodes] == [10.0 * i for i in range(1, 7)]
    assert result.env_steps == 300 and result.buffer is None


def test_her_runner_trains_on_a_her_buffer(monkeypatch):
    her = pytest.importorskip("pearll.buffers.her", reason="HERBuffer not merged yet")
    monkeypatch.setattr(runners, "train_dqn_agent", random_dqn_trainer)
    result = runners.run_her(config("her", env_id=GOAL_ENV_ID, buffer=None), reporter())
    assert type(result.buffer) is her.HERBuffer
    assert len(result.buffer) > 0


def test_prioritized_n_step_buffer():
    module = pytest.importorskip("pearll.buffers.prioritized", reason="PER not merged yet")
    import gymnasium as gym

    buffer = make_replay_buffer(gym.make("CartPole-v1"), config(buffer="prioritized", n_step=3))
    assert type(buffer) is module.PrioritizedReplayBuffer
    assert buffer.n_step == 3


def test_n_step_replay_buffer():
    if "n_step" not in inspect.signature(ReplayBuffer).parameters:
        pytest.skip("n-step ReplayBuffer not merged yet")
    import gymnasium as gym

    buffer = make_replay_buffer(gym.make("CartPole-v1"), config(n_step=3))
    assert type(buffer) is ReplayBuffer and buffer.n_step == 3


@pytest.mark.parametrize("name", list(ALGOS))
def test_each_algorithms_default_env_fits_it(name):
    algo = ALGOS[name]
    if algo.default_env == runners.BIT_FLIPPING_ID:
        pytest.importorskip("pearll.envs", reason="BitFlippingEnv not merged yet")
    import gymnasium as gym

    env = gym.make(algo.default_env)
    assert algo.space_problem(env.observation_space, env.action_space) is None
