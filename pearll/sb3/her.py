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

import copy
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

# copy_info_dict: the extra observation key holding each row's transition number.
INFO_KEY = "_pearll_transition"
INFO_SPACE = spaces.Box(-1, np.iinfo(np.int64).max, (1,), dtype=np.int64)


def _no_rewards(achieved_goal: np.ndarray, desired_goal: np.ndarray, infos: Any) -> np.ndarray:
    """pearll's relabelling reward when the adapter computes the rewards itself."""
    return np.zeros(len(achieved_goal), dtype=np.float32)


def _as_row(infos: list[dict[str, Any]]) -> np.ndarray:
    row = np.empty(len(infos), dtype=object)
    row[:] = list(infos)
    return row


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

    Args: SB3's (``env`` is the VecEnv, ``n_sampled_goal``, ``goal_selection_strategy``,
    ``copy_info_dict``), plus ``seed`` and ``min_episode_length`` as
    :class:`pearll.sb3.ReplayBuffer`. ``optimize_memory_usage`` is accepted.

    ``copy_info_dict=True`` keeps each transition's info dict, as SB3 does, and gives
    ``compute_reward`` a deep copy of the relabelled transitions' info dicts (else empty
    ones). The dicts are kept in a Python array beside the pearll buffer, found through a
    transition number stored as an extra observation key (8 bytes a row), which samples never
    show. Such a buffer pickles (SB3's ``save_replay_buffer``) but refuses
    ``save_checkpoint``: pearll's format holds arrays, not dicts.
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
        self.env = env
        self.copy_info_dict = bool(copy_info_dict)
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

    def _stored_observation_space(self, space: spaces.Dict) -> spaces.Dict:
        if not self.copy_info_dict:
            return space
        return spaces.Dict({**space.spaces, INFO_KEY: INFO_SPACE})

    def _make_pearll(self, env: SpacesOnly, rows: int, rng: np.random.Generator) -> Any:
        return HERBuffer(
            env, rows, goal_selection_strategy=self._strategy,
            n_sampled_goal=self.n_sampled_goal, device="cpu", seed=rng,
            **self._pearll_load_overrides(),
        )  # fmt: skip

    def _pearll_load_overrides(self) -> dict[str, Any]:
        # With info dicts the adapter computes the relabelled rewards itself (_after_draw).
        return {"compute_reward": _no_rewards if self.copy_info_dict else EnvReward(self)}

    def _checkpoint_options(self) -> dict[str, Any]:
        if self.copy_info_dict:
            raise ValueError(
                "save_checkpoint: copy_info_dict=True keeps info dicts, which pearll's "
                "checkpoint format cannot hold; use SB3's save_replay_buffer (pickle)"
            )
        return {"n_sampled_goal": self.n_sampled_goal,
                "goal_selection_strategy": self._strategy}  # fmt: skip

    def _reset_adapter_state(self) -> None:
        super()._reset_adapter_state()
        if self.copy_info_dict:  # row (transition number % rows) of each transition's dicts
            self._infos = np.empty((self.pearll_buffer.buffer_size, self.n_envs), dtype=object)
            self._transitions = 0

    def add(self, obs, next_obs, action, reward, done, infos) -> None:
        """SB3's add; with ``copy_info_dict``, each sub-env's info dict is kept too."""
        if not self.copy_info_dict:
            return super().add(obs, next_obs, action, reward, done, infos)
        number = self._transitions
        # The step's number with its next observations; the one before with its observations,
        # so that a step that follows on still has the observations its predecessor stored.
        lead = (self.n_envs, 1)
        obs = {**obs, INFO_KEY: np.full(lead, number - 1, dtype=np.int64)}
        next_obs = {**next_obs, INFO_KEY: np.full(lead, number, dtype=np.int64)}
        super().add(obs, next_obs, action, reward, done, infos)
        self._infos[number % len(self._infos)] = _as_row(infos)
        self._transitions = number + 1

    def _after_draw(self, record: Any, per_env: int) -> Any:
        if not self.copy_info_dict:
            return record
        k = self.n_sampled_goal
        relabelled = np.zeros((self.n_envs, per_env), dtype=bool)
        relabelled[:, : int(per_env * k // (k + 1))] = True  # pearll's HERBuffer: these first
        relabelled = relabelled.reshape(-1)
        envs = np.repeat(np.arange(self.n_envs), per_env)[relabelled]
        numbers = record.next_observations[INFO_KEY][relabelled, 0]
        infos = np.empty(len(numbers), dtype=object)
        infos[:] = [copy.deepcopy(info) for info in self._infos[numbers % len(self._infos), envs]]
        if len(numbers):
            achieved = record.next_observations["achieved_goal"][relabelled]
            desired = record.observations["desired_goal"][relabelled]
            rewards = EnvReward(self)(achieved, desired, infos)
            record.rewards[relabelled, 0] = np.asarray(rewards, dtype=np.float32).reshape(-1)
        for observations in (record.observations, record.next_observations):
            del observations[INFO_KEY]
        return record

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
