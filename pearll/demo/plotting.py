"""The learning-curve PNG: episode return against env steps, raw and smoothed.

Draws on a bare ``matplotlib.figure.Figure`` (rendered by Agg), so it touches neither pyplot's
global state nor the session's backend and works without a display.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from pearll.demo.episodes import Episode

SMOOTHING_EPISODES = 20


def trailing_mean(values: Sequence[float], window: int) -> np.ndarray:
    """Element i is the mean of ``values[max(0, i - window + 1) : i + 1]``, float64 ``(N,)``."""
    if window < 1:
        raise ValueError(f"window: expected a positive int, got {window}")
    values = np.asarray(values, dtype=np.float64)
    sums = np.concatenate([[0.0], np.cumsum(values)])
    ends = np.arange(1, len(values) + 1)
    starts = np.maximum(ends - window, 0)
    return (sums[ends] - sums[starts]) / (ends - starts)


def curve(episodes: Sequence[Episode], window: int = SMOOTHING_EPISODES) -> dict:
    """What the plot draws: on goal envs (episodes reporting success) the success rate of the
    last ``window`` episodes, else each episode's return and their trailing mean.

    Returns ``{"ylabel", "steps", "points" (or None), "line", "line_label"}``.
    """
    steps = [e.env_steps for e in episodes]
    if any(e.success is not None for e in episodes):
        known = [e for e in episodes if e.success is not None]
        rate = trailing_mean([float(e.success) for e in known], window)
        return {
            "ylabel": "success rate",
            "steps": [e.env_steps for e in known],
            "points": None,
            "line": rate,
            "line_label": f"success rate of the last {window} episodes",
        }
    returns = [e.episode_return for e in episodes]
    return {
        "ylabel": "episode return",
        "steps": steps,
        "points": returns,
        "line": trailing_mean(returns, window),
        "line_label": f"mean of last {window} episodes",
    }


def plot_learning_curve(
    episodes: Sequence[Episode],
    path: str | Path,
    title: str = "",
    reward_threshold: float | None = None,
    window: int = SMOOTHING_EPISODES,
) -> Path:
    """Save a PNG of each episode's return at the env step it ended, with its trailing mean;
    on goal envs (episodes reporting success), of the success rate instead (see :func:`curve`).

    ``reward_threshold`` (e.g. the env spec's "solved" return) is drawn as a dashed line on a
    return plot. With no episodes the axes say so. Returns ``path``.
    """
    path = Path(path)
    fig = Figure(figsize=(7, 4), dpi=120, layout="constrained")
    ax = fig.add_subplot()
    drawn = curve(episodes, window)
    if episodes:
        if drawn["points"] is not None:
            ax.scatter(drawn["steps"], drawn["points"], s=6, alpha=0.35, color="tab:blue",
                       label="episode return")  # fmt: skip
        ax.plot(drawn["steps"], drawn["line"], color="tab:blue", linewidth=2,
                label=drawn["line_label"])  # fmt: skip
    else:
        ax.text(0.5, 0.5, "no finished episodes", ha="center", va="center", transform=ax.transAxes)
    if drawn["ylabel"] == "success rate":
        ax.set_ylim(-0.05, 1.05)
        reward_threshold = None  # a return threshold has no place on a rate axis
    if reward_threshold is not None:
        ax.axhline(reward_threshold, color="tab:green", linestyle="--", label="solved")
    ax.set_xlabel("env steps")
    ax.set_ylabel(drawn["ylabel"])
    ax.set_title(title)
    ax.grid(alpha=0.3)
    if episodes or reward_threshold is not None:
        ax.legend(loc="best")
    fig.savefig(path, format="png")
    return path
