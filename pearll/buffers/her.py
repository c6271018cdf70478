"""HERBuffer: hindsight experience replay on the ReplayBuffer layout, single and vector envs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from gymnasium import spaces

from pearll.buffers.base import locked
from pearll.buffers.core.checks import check_batch_size
from pearll.buffers.core.env_info import EnvInfo
from pearll.buffers.replay import ReplayBuffer
from pearll.buffers.sampling.episodes import EpisodeIndex
from pearll.buffers.sampling.uniform import draw_flat_rows, draw_rows
from pearll.buffers.writing.writer import Written
from pearll.common.arguments import check_int
from pearll.common.enumerations import (
    GoalSelectionStrategy,
    TrajectoryType,
    parse_goal_selection_strategy,
    parse_trajectory_type,
)
from pearll.common.tree import tree_map
from pearll.common.type_aliases import DictTrajectories

GOAL_KEYS = ("observation", "achieved_goal", "desired_goal")

# compute_reward(achieved_goal (N, *goal_shape), desired_goal (N, *goal_shape), info) -> (N,)
RewardFn = Callable[[np.ndarray, np.ndarray, Any], Any]


class HERBuffer(ReplayBuffer):
    """Replay for goal-conditioned envs that relabels sampled transitions with achieved goals.

    The env's observations are Gymnasium-Robotics dicts with ``"observation"``,
    ``"achieved_goal"`` and ``"desired_goal"``; they are stored once, as in ReplayBuffer (one
    observation array for s and s'), so the goals are stored once too. Adding, retention,
    ``last`` and ``all`` are ReplayBuffer's (stored transitions, never relabelled), for single
    envs and vector envs in every autoreset mode.

    ``sample(B)`` draws B stored transitions per sub-env uniformly, then relabels the first
    ``floor(B * n_sampled_goal / (n_sampled_goal + 1))`` of each sub-env's batch (the draws are
    independent, so which ones does not matter): their desired goal, in both ``observations``
    and ``next_observations``, becomes the achieved goal of another step of the same episode
    (see :class:`GoalSelectionStrategy`), and their reward becomes
    ``compute_reward(next achieved goal, new goal, info)``, computed once for the whole batch
    with ``info`` an object array of empty dicts. Their ``dones`` stay as stored.

    Episode boundaries: goals come only from the sampled transition's own episode, also when
    it wraps around the ring or its first steps were overwritten (EPISODE then draws from the
    steps still held). An episode still running counts as ending at its newest observation:
    FUTURE and FINAL draw from the steps stored so far.

    Args:
        env: a goal env (gymnasium Env or VectorEnv) with a Dict observation space holding the
            three keys; ``achieved_goal`` and ``desired_goal`` must have one shape and dtype.
        buffer_size: rows per sub-env (at least 3), as in ReplayBuffer.
        goal_selection_strategy: ``"future"``, ``"final"``, ``"episode"`` or the enum.
        n_sampled_goal: relabelled goals per original one (k in the HER paper); 0 turns HER off.
        device: where ``dtype="torch"`` output lands.
        compute_reward: the vectorised reward function. By default the env's own: for a single
            env ``env.unwrapped.compute_reward``; for a vector env that keeps its sub-envs
            (SyncVectorEnv) the first sub-env's unwrapped function; otherwise (AsyncVectorEnv)
            ``env.call("compute_reward", ...)``, which runs it in every sub-env, first result used
            (checked with ``has_wrapper_attr`` at construction, so a missing one is a ValueError
            here, never a call that shuts the workers down). Passing the function avoids the
            round trip to the workers at every ``sample``.
        seed, autoreset_mode: as in BaseBuffer.
    """

    relabels_in_sample = True  # sample relabels goals: pooled readers call sample itself

    def __init__(
        self,
        env: Any,
        buffer_size: int,
        goal_selection_strategy: str | GoalSelectionStrategy = "future",
        n_sampled_goal: int = 4,
        device: Any = "auto",
        compute_reward: RewardFn | None = None,
        *,
        seed: int | np.random.Generator | None = None,
        autoreset_mode: Any = None,
        storage: str = "memory",
        storage_dir: Any = None,
    ) -> None:
        self.goal_selection_strategy = parse_goal_selection_strategy(goal_selection_strategy)
        self.n_sampled_goal = check_int(n_sampled_goal, "n_sampled_goal", 0)
        if compute_reward is not None and not callable(compute_reward):
            raise TypeError(f"compute_reward: expected a callable, got {compute_reward!r}")
        info = EnvInfo.of(env, autoreset_mode)
        _check_goal_space(info.observation_space)
        self.compute_reward = compute_reward or _env_compute_reward(env, info.is_vector)
        super().__init__(
            env, buffer_size, device, seed=seed, autoreset_mode=autoreset_mode,
            storage=storage, storage_dir=storage_dir,
        )  # fmt: skip
        # compute_reward is code, not data: load takes it from the env, or as a keyword.
        self._record_settings_from(
            goal_selection_strategy="_goal_strategy_name", n_sampled_goal="n_sampled_goal"
        )
        self._episodes = EpisodeIndex.empty(self.buffer_size, self.num_envs)
        self._parts.add("episodes", self._episodes)
        self._observers.append(self._episodes_written)
        self._repairs.append(self._rebuild_episodes)

    sized_parts = (*ReplayBuffer.sized_parts, EpisodeIndex)

    @property
    def _goal_strategy_name(self) -> str:
        return self.goal_selection_strategy.value

    @property
    def relabel_ratio(self) -> float:
        """The fraction of each sampled batch that gets a new goal: k / (k + 1)."""
        return self.n_sampled_goal / (self.n_sampled_goal + 1)

    def _episodes_written(self, written: Written) -> None:
        """The write observer: the episode index follows every write."""
        if written.closed is not None:  # end_episodes: episodes ended without a new step
            self._episodes.end(written.closed)
        elif written.plan is not None:
            self._episodes.record(written.plan)
        else:
            self._episodes.record_step(written.rows, written.envs, written.ended)

    def _rebuild_episodes(self) -> None:
        """The repair after an add interrupted before the index followed it (writer.py)."""
        ring = self._ring
        self._episodes.rebuild(ring.valid, ring.pos, ring.size)

    @locked
    def sample(
        self, batch_size: int, flatten_env: bool = False, dtype: str | TrajectoryType = "numpy"
    ) -> DictTrajectories:
        """``batch_size`` transitions per sub-env, the relabelled ones first (see the class doc).

        Shapes as in ReplayBuffer.sample: ``(B, ...)``, ``(E, B, ...)``, or ``(B, ...)`` with
        ``flatten_env`` (B in all, drawn uniformly among every stored transition of every
        sub-env, the first ``B * k // (k + 1)`` relabelled). Storage is only read: relabelling
        happens on the gathered copy.
        """
        check_batch_size(batch_size)
        parse_trajectory_type(dtype)
        self._writer.recover_if_interrupted()  # the episode index, if an add never reached it
        n_relabelled = int(batch_size * self.n_sampled_goal // (self.n_sampled_goal + 1))
        if flatten_env and self.env_info.is_vector:
            # B in all, uniformly over every stored transition, as one batch (1, B).
            flat_rows, flat_envs = draw_flat_rows(self.rng, self._ring, batch_size)
            gathered = tree_map(
                lambda a: a.reshape(1, batch_size, *a.shape[2:]),
                self._gather(flat_rows[:, None], flat_envs),
            )
            rows, envs = flat_rows[None], flat_envs[None]
        else:
            rows = draw_rows(self.rng, self._ring, batch_size)
            gathered = self._gather(rows)
            envs = np.arange(self.num_envs)[:, None]
        if n_relabelled:
            self._relabel(gathered, rows[:, :n_relabelled], envs[:, :n_relabelled])
        return self._package(gathered, flatten_env, dtype)

    def _relabel(self, gathered: dict[str, Any], rows: np.ndarray, envs: np.ndarray) -> None:
        """Give the first ``rows.shape[1]`` transitions of each batch row new goals; ``rows``
        ``(E', n)`` are ring rows of the sub-envs ``envs`` (broadcast to ``rows``)."""
        n = rows.shape[1]
        goal_rows = self._goal_rows(rows, envs) % self.buffer_size
        goals = self._store.fields["observations"]["achieved_goal"][goal_rows, envs]
        for key in ("observations", "next_observations"):
            gathered[key]["desired_goal"][:, :n] = goals
        achieved = gathered["next_observations"]["achieved_goal"][:, :n]
        gathered["rewards"][:, :n, 0] = self._rewards(achieved, goals)

    def _goal_rows(self, rows: np.ndarray, envs: np.ndarray) -> np.ndarray:
        """Absolute rows whose achieved goals relabel the transitions in ring rows ``rows``
        of sub-envs ``envs``."""
        at, first, last = self._episodes.extents(rows, envs)
        strategy = self.goal_selection_strategy
        if strategy is GoalSelectionStrategy.FINAL:
            return last
        low = at + 1 if strategy is GoalSelectionStrategy.FUTURE else first
        return self.rng.integers(low, last + 1)

    def _rewards(self, achieved: np.ndarray, goals: np.ndarray) -> np.ndarray:
        """compute_reward over ``(E, n, *goal_shape)`` goals as one batch -> ``(E, n)``."""
        lead = achieved.shape[:2]
        count = lead[0] * lead[1]
        flat = (
            achieved.reshape(count, *achieved.shape[2:]),
            goals.reshape(count, *goals.shape[2:]),
        )
        infos = np.array([{} for _ in range(count)], dtype=object)
        rewards = np.asarray(self.compute_reward(*flat, infos), dtype=np.float32)
        if rewards.size != count:
            raise ValueError(
                f"compute_reward: expected {count} rewards for {count} goal pairs (it must be "
                f"vectorised over a leading batch axis), got shape {rewards.shape}"
            )
        return rewards.reshape(lead)


def _check_goal_space(space: spaces.Space) -> None:
    if not isinstance(space, spaces.Dict) or not set(GOAL_KEYS) <= set(space.spaces):
        keys = sorted(space.spaces) if isinstance(space, spaces.Dict) else type(space).__name__
        raise ValueError(
            f"HERBuffer needs a goal env: a Dict observation space with keys {list(GOAL_KEYS)}, "
            f"got {keys}"
        )
    achieved, desired = space["achieved_goal"], space["desired_goal"]
    if isinstance(achieved, spaces.Dict) or isinstance(desired, spaces.Dict):
        raise ValueError("HERBuffer: achieved_goal and desired_goal must be arrays, not dicts")
    if achieved.shape != desired.shape or achieved.dtype != desired.dtype:
        raise ValueError(
            "HERBuffer: achieved_goal and desired_goal must have one shape and dtype, got "
            f"{achieved.shape} {achieved.dtype} and {desired.shape} {desired.dtype}"
        )


def _env_compute_reward(env: Any, is_vector: bool) -> RewardFn:
    """The env's vectorised compute_reward (see HERBuffer's ``compute_reward`` argument)."""
    if is_vector:
        sub_envs = getattr(getattr(env, "unwrapped", env), "envs", None)
        if sub_envs:
            env = sub_envs[0]
        elif hasattr(env, "call"):
            # Asked first: a worker asked for a missing attribute shuts every worker down.
            if not all(env.call("has_wrapper_attr", "compute_reward")):
                raise ValueError(
                    "compute_reward: the sub-envs have no compute_reward(achieved_goal, "
                    "desired_goal, info); pass one to HERBuffer(..., compute_reward=...)"
                )
            return lambda achieved, desired, info: env.call(
                "compute_reward", achieved, desired, info
            )[0]
    function = getattr(getattr(env, "unwrapped", env), "compute_reward", None)
    if not callable(function):
        raise ValueError(
            "compute_reward: the env has no compute_reward(achieved_goal, desired_goal, info); "
            "pass one to HERBuffer(..., compute_reward=...)"
        )
    return function
