"""Progress: the bar follows reported env steps, shows the recent mean return, logs episodes."""

from __future__ import annotations

import io
import itertools
import time

import gymnasium as gym
import pytest

from pearll.demo.episodes import Episode
from pearll.demo.progress import (
    RECENT_EPISODES,
    ProgressReporter,
    StepProgress,
    recent_mean_return,
    success_rate,
)


def make_reporter(total=1_000, stop_at=None):
    ticks = itertools.count()  # a clock that advances one second per reading
    file = io.StringIO()
    reporter = ProgressReporter(
        total, "test", file=file, clock=lambda: float(next(ticks)), stop_at=stop_at
    )
    return reporter, file


def test_episodes_are_logged_with_steps_return_and_wall_time():
    reporter, _ = make_reporter()
    reporter.episode(10, 10.0)
    reporter.episode(25, 15.0, success=True)
    assert reporter.episodes == [Episode(10, 10.0, 1.0), Episode(25, 15.0, 2.0, True)]
    assert reporter.env_steps == 25


def test_progress_moves_the_bar_forward_only():
    reporter, _ = make_reporter()
    reporter.progress(30)
    reporter.progress(20)  # a late episode callback must not move it back
    assert reporter.env_steps == 30
    reporter.episode(25, 1.0)
    assert reporter.env_steps == 30


def test_bar_shows_steps_and_recent_mean_return():
    reporter, file = make_reporter(total=1_000)
    for i in range(RECENT_EPISODES + 5):
        reporter.episode(10 * (i + 1), float(i))
    reporter.close()
    output = file.getvalue()
    expected_mean = sum(range(5, RECENT_EPISODES + 5)) / RECENT_EPISODES
    assert f"return {expected_mean:.1f} (last {RECENT_EPISODES})" in output
    assert "250/1.00k" in output
    assert "step/s" in output


def test_success_rate_shows_only_for_goal_envs():
    reporter, _ = make_reporter()
    reporter.episode(5, -5.0)
    assert "success" not in reporter.describe_recent()
    reporter.episode(9, -1.0, success=True)
    reporter.episode(12, -3.0, success=False)
    assert reporter.describe_recent() == "return -3.0 (last 3), success 50%"


def test_describe_recent_before_any_episode():
    reporter, _ = make_reporter()
    assert reporter.describe_recent() == "no episode yet"


@pytest.mark.parametrize("count", [1, RECENT_EPISODES, RECENT_EPISODES + 7])
def test_recent_mean_return_averages_the_last_window(count):
    episodes = [Episode(i, float(i * i), 0.0) for i in range(count)]
    last = [float(i * i) for i in range(count)][-RECENT_EPISODES:]
    assert recent_mean_return(episodes) == pytest.approx(sum(last) / len(last))
    assert recent_mean_return([]) is None


def test_success_rate_ignores_episodes_without_success():
    episodes = [Episode(1, 0.0, 0.0, True), Episode(2, 0.0, 0.0, None), Episode(3, 0, 0, False)]
    assert success_rate(episodes) == 0.5
    assert success_rate(episodes[1:2]) is None


def test_step_progress_reports_every_step():
    reporter, _ = make_reporter()
    env = StepProgress(gym.make("CartPole-v1"), reporter)
    env.reset(seed=0)
    for _ in range(7):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            env.reset()
    assert env.env_steps == 7
    assert reporter.env_steps == 7
    assert env.observation_space == env.unwrapped.observation_space


def test_bar_shows_the_step_budget_and_where_the_run_stops_from_the_start():
    reporter, file = make_reporter(total=100_000, stop_at=475.0)
    assert reporter.describe_recent() == "no episode yet, stops at 475"
    reporter.episode(30, 30.0)
    reporter.close()
    output = file.getvalue()
    assert "stops at 475" in output and "100k" in output  # both ends of the run on screen
    assert reporter.describe_recent() == "return 30.0 (last 1), stops at 475"


def test_the_bar_clock_starts_at_the_first_step_not_at_the_trainers_setup():
    reporter, file = make_reporter(total=100_000)
    created = reporter._bar.start_t
    time.sleep(0.3)  # the trainer builds its networks
    reporter.progress(1)
    assert reporter._bar.start_t >= created + 0.3  # the setup is not one slow step
    reporter.progress(2)
    reporter.close()
    assert "s/step" not in file.getvalue()  # no first reading of seconds per step
