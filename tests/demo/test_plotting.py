"""The learning curve: a readable PNG, with a trailing mean matching a naive one."""

from __future__ import annotations

import numpy as np
import pytest

from pearll.demo.episodes import Episode
from pearll.demo.plotting import plot_learning_curve, trailing_mean
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
