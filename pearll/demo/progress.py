"""Progress of a training run: a tqdm bar fed by the trainer's callbacks, and the episode log.

Trainers report through two calls: :meth:`ProgressReporter.episode` as each episode ends and
:meth:`ProgressReporter.progress` as env steps pass (both take the run's total env steps, not
increments). :class:`StepProgress` turns any single env into a per-step progress source, for
trainers whose callbacks fire only at episode ends.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import IO, Any

import gymnasium as gym
import numpy as np
from tqdm import tqdm

from pearll.demo.episodes import Episode

RECENT_EPISODES = 20  # the window of "recent mean return", in the bar and the summary


class ProgressReporter:
    """A tqdm bar of env steps (with steps/s) showing the recent mean episode return.

    The bar's total is the step budget; ``stop_at``, the mean return at which the run stops
    early (475 for CartPole-v1), is shown beside the mean, so both ends are on screen.

    Keeps every reported episode in ``episodes``, stamped with the seconds since the reporter
    was made. ``clock`` (seconds, monotonic) and ``file`` (default stderr) are there for tests.
    Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        total_steps: int | None,
        description: str = "",
        *,
        file: IO[str] | None = None,
        disable: bool | None = False,
        clock: Callable[[], float] = time.perf_counter,
        stop_at: float | None = None,
    ) -> None:
        self.episodes: list[Episode] = []
        self._stop_at = stop_at  # shown beside the recent mean: where the run stops early
        self._clock = clock
        self._start = clock()
        self._bar = tqdm(
            total=total_steps,
            desc=description,
            unit="step",
            unit_scale=True,
            smoothing=0.1,
            file=file,
            disable=disable,
            dynamic_ncols=True,
        )
        self._bar.set_postfix_str(self.describe_recent(), refresh=False)

    @property
    def elapsed(self) -> float:
        """Seconds since the reporter was made."""
        return self._clock() - self._start

    @property
    def env_steps(self) -> int:
        """The largest env-step count reported so far."""
        return int(self._bar.n)

    def progress(self, env_steps: int) -> None:
        """Move the bar to ``env_steps`` taken in the run so far (never backwards).

        The bar's clock starts at the first step reported: the trainer's own setup before it
        (building networks, torch's first calls) would otherwise count as one very slow step
        and show an ETA of days.
        """
        if env_steps > self._bar.n:
            if self._bar.n == 0:
                self._bar.reset(total=self._bar.total)
            self._bar.update(env_steps - self._bar.n)

    def episode(self, env_steps: int, episode_return: float, success: bool | None = None) -> None:
        """Log a finished episode (``env_steps`` = run total when it ended) and show it."""
        self.episodes.append(Episode(int(env_steps), float(episode_return), self.elapsed, success))
        # refresh=False: the bar redraws at its own pace (mininterval), not once per episode.
        self._bar.set_postfix_str(self.describe_recent(), refresh=False)
        self.progress(env_steps)

    def describe_recent(self) -> str:
        """``"return 123.4 (last 20)"``, plus the success rate when episodes report success."""
        goal = "" if self._stop_at is None else f", stops at {self._stop_at:g}"
        mean = recent_mean_return(self.episodes)
        if mean is None:
            return f"no episode yet{goal}"
        recent = self.episodes[-RECENT_EPISODES:]
        text = f"return {mean:.1f} (last {len(recent)}){goal}"
        rate = success_rate(recent)
        return text if rate is None else f"{text}, success {rate:.0%}"

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> ProgressReporter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def recent_mean_return(episodes: list[Episode], window: int = RECENT_EPISODES) -> float | None:
    """Mean return of the last ``window`` episodes; None when there are none."""
    if not episodes:
        return None
    return float(np.mean([e.episode_return for e in episodes[-window:]]))


def success_rate(episodes: list[Episode]) -> float | None:
    """Share of ``episodes`` that succeeded, over those reporting success; None if none do."""
    known = [e.success for e in episodes if e.success is not None]
    return float(np.mean(known)) if known else None


class StepProgress(gym.Wrapper):
    """Reports every ``step`` of ``env`` to ``reporter.progress`` (the count of steps so far)."""

    def __init__(self, env: gym.Env, reporter: ProgressReporter) -> None:
        super().__init__(env)
        self._reporter = reporter
        self.env_steps = 0

    def step(self, action: Any):
        result = self.env.step(action)
        self.env_steps += 1
        self._reporter.progress(self.env_steps)
        return result
