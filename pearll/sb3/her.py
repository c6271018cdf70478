"""HerReplayBuffer for SB3: pearll's HERBuffer behind SB3's ``HerReplayBuffer`` API.

It subclasses SB3's ``HerReplayBuffer``, so SB3 passes it ``env=`` when building it and calls
``set_env`` / ``truncate_last_trajectory`` after ``load_replay_buffer``. Relabelling follows
SB3's rules: ``"future"`` takes the achieved goal of the transition's own next observation or a
later one of its episode (SB3's inclusive future), ``"final"`` the episode's last, ``"episode"``
any of its episode's next observations; ``int(batch_size * k / (k + 1))`` samples of each batch
are relabelled (k = ``n_sampled_goal``) and get ``compute_reward(next achieved goal, new goal)``.

Which episodes can be sampled: every stored transition, also those of an episode still running
(SB3's own samples finished episodes only, and cannot sample before the first one ends); a
running episode's goals come from the steps stored so far, its newest observation counting as
its last.

The reward function is the env's ``compute_reward``, reached through ``self.env`` at sample time
(``env.env_method("compute_reward", ..., indices=[0])``, as SB3 does): the buffer keeps no
other reference to the env, which SB3 drops when it pickles the buffer and gives back with
``set_env``.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common.type_aliases import DictReplayBufferSamples
from stable_baselines3.her.her_replay_buffer import HerReplayBuffer as SB3HerReplayBuffer

from pearll.buffers import HERBuffer
from pearll.sb3.adapter import PearllAdapter
from pearll.sb3.layout import SpacesOnly


class EnvReward:
    """``compute_reward`` of the env its owner holds now (``owner.env``); keeps no env itself."""

    def __init__(self, owner: Any) -> None:
        self.owner = owner

    def __call__(self, achieved_goal: np.ndarray, desired_goal: np.ndarray, infos: Any) -> Any:
        env = self.owner.env
        if env is None:
            raise RuntimeError(
                "HerReplayBuffer has no env to compute rewards with (a loaded buffer): call "
                "set_env(env) first (SB3's load_replay_buffer does)"
            )
        infos = list(infos)
        return env.env_method("compute_reward", achieved_goal, desired_goal, infos, indices=[0])[0]


class HerReplayBuffer(PearllAdapter, SB3HerReplayBuffer):
    """SB3's ``HerReplayBuffer`` on pearll's ``HERBuffer`` (see the module docstring).

    Args: SB3's (``env`` is the VecEnv, ``n_sampled_goal``, ``goal_selection_strategy``), plus
    ``seed`` and ``min_episode_length`` as :class:`pearll.sb3.ReplayBuffer`.
    ``optimize_memory_usage`` is accepted. ``copy_info_dict=True`` is refused: the stored
    transitions keep no info dicts, so ``compute_reward`` always gets empty ones.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        env: Any,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        n_sampled_goal: int = 4,
        goal_selection_strategy: str = "future",
        copy_info_dict: bool = False,
        *,
        seed: int | np.random.Generator | None = None,
        min_episode_length: int = 1,
    ) -> None:
        if copy_info_dict:
            raise ValueError(
                "copy_info_dict=True: not supported; the buffer stores no info dicts, and "
                "compute_reward gets empty ones (SB3's default, copy_info_dict=False)"
            )
        self.env = env
        self.copy_info_dict = False
        self.n_sampled_goal = n_sampled_goal
        self.her_ratio = 1 - (1.0 / (n_sampled_goal + 1))
        strategy = getattr(goal_selection_strategy, "name", goal_selection_strategy)
        self._strategy = str(strategy).lower()
        self._setup(
            buffer_size, observation_space, action_space, device, n_envs,
            optimize_memory_usage, handle_timeout_termination, seed, min_episode_length,
            None, None,
        )  # fmt: skip
        self.goal_selection_strategy = self.pearll_buffer.goal_selection_strategy

    def _make_pearll(self, env: SpacesOnly, rows: int, rng: np.random.Generator) -> Any:
        return HERBuffer(
            env, rows, goal_selection_strategy=self._strategy,
            n_sampled_goal=self.n_sampled_goal, device="cpu", compute_reward=EnvReward(self),
            seed=rng,
        )  # fmt: skip

    def sample(self, batch_size: int, env: Any = None) -> DictReplayBufferSamples:
        """``batch_size`` transitions, ``int(batch_size * k / (k + 1))`` of them relabelled."""
        return DictReplayBufferSamples(**self._sample_fields(self._draw(batch_size), env))

    def truncate_last_trajectory(self) -> None:
        """End each sub-env's running episode at its newest step (SB3 calls this after
        ``load_replay_buffer``), truncated: it bootstraps from its stored next observation."""
        ended = self.end_episodes()
        if len(ended):
            warnings.warn(
                f"The last trajectory of sub-envs {ended.tolist()} in the replay buffer was "
                "truncated. If you are in the same episode as when the replay buffer was saved, "
                "use truncate_last_traj=False to avoid that.",
                stacklevel=2,
            )
