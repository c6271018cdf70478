"""The learning curve: a readable PNG, with a trailing mean matching a naive one."""

from __future__ import annotations

import numpy as np
import pytest

from pearll.demo.episodes import Episode
from pearll.demo.plotting import curve, plot_learning_curve, trailing_mean
from tests.demo.support import assert_drawn_png


def test_curve_is_a_png(tmp_path):
    rng = np.random.default_rng(0)
    episodes = [Episode(20 * i, float(i + rng.normal()), 0.1 * i) for i in range(50)]
    path = plot_learning_curve(episodes, tmp_path / "curve.png", "dqn", reward_threshold=40.0)
    assert_drawn_png(path)


@pytest.mark.parametrize("count", [0, 1])
def test_curve_with_few_episodes_is_still_a_png(tmp_path, count):
    episodes = [Episode(10, 3.0, 0.1)][:count]
    assert_drawn_png(plot_learning_curve(episodes, tmp_path / "curve.png"))


@pytest.mark.parametrize("window", [1, 3, 20])
def test_trailing_mean_matches_a_loop(window):
    values = np.random.default_rng(window).normal(size=30)
    expected = [values[max(0, i - window + 1) : i + 1].mean() for i in range(len(values))]
    np.testing.assert_allclose(trailing_mean(values, window), expected)


def test_trailing_mean_rejects_a_non_positive_window():
    with pytest.raises(ValueError, match="window"):
        trailing_mean([1.0], 0)


def test_goal_env_runs_plot_the_success_rate(tmp_path):
    # --algo her reports success: the plot shows the success rate, not returns of -10 to 0.
    episodes = [Episode(10 * i, -float(i % 5), 0.1 * i, success=i % 5 == 0) for i in range(40)]
    drawn = curve(episodes, window=20)
    assert drawn["ylabel"] == "success rate" and drawn["points"] is None
    np.testing.assert_allclose(drawn["line"][-1], 4 / 20)
    assert ((drawn["line"] >= 0) & (drawn["line"] <= 1)).all()
    assert_drawn_png(plot_learning_curve(episodes, tmp_path / "her.png", reward_threshold=None))


def test_return_runs_plot_returns_and_their_mean():
    episodes = [Episode(10 * i, float(i), 0.1 * i) for i in range(5)]
    drawn = curve(episodes, window=2)
    assert drawn["ylabel"] == "episode return" and drawn["points"] == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(drawn["line"], [0, 0.5, 1.5, 2.5, 3.5])
