"""ReplayBuffer, DictReplayBuffer and NStepReplayBuffer: SB3's classes on pearll's ReplayBuffer.

Pass one as SB3's ``replay_buffer_class``; everything else in ``replay_buffer_kwargs``::

    DQN("MlpPolicy", env, replay_buffer_class=ReplayBuffer, replay_buffer_kwargs={"seed": 0})
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch as th
from gymnasium import spaces
from stable_baselines3.common import buffers as sb3_buffers
from stable_baselines3.common.type_aliases import DictReplayBufferSamples, ReplayBufferSamples

from pearll.buffers import ReplayBuffer as PearllReplayBuffer
from pearll.sb3.adapter import PearllAdapter
from pearll.sb3.layout import SpacesOnly


class ReplayBuffer(PearllAdapter, sb3_buffers.ReplayBuffer):
    """SB3's ``ReplayBuffer`` on a pearll ``ReplayBuffer`` (see :mod:`pearll.sb3.adapter`).

    Args (SB3's, then pearll's, all keywords of ``replay_buffer_kwargs``):
        buffer_size: transitions in all, over the sub-envs (SB3's meaning).
        observation_space, action_space, device, n_envs: as SB3 passes them.
        optimize_memory_usage: accepted, also with ``handle_timeout_termination`` (observations
            and next observations always share one array, exact at episode ends).
        handle_timeout_termination: ``infos[i]["TimeLimit.truncated"]`` marks a truncation
            (bootstrapped); False: every done is a termination.
        seed: an int or numpy Generator for sampling; default: drawn from numpy's global one.
        min_episode_length: the mean episode length the ring is sized for: it reserves a row
            per episode end, ``ceil(per_env / min_episode_length)`` (each episode end costs a
            row of pearll's one observation array). Default: 1 (any episode lengths), or
            ``FRAME_STACK_MIN_EPISODE_LENGTH`` (500) with ``frame_stack``, where a row is a
            frame; shorter episodes make the buffer hold fewer transitions (never wrong ones),
            and it warns once when it holds fewer than SB3's would.
        frame_stack, channels_order: for ``VecFrameStack`` observations (see
            :mod:`pearll.sb3.layout`): ``frame_stack=k`` stores each frame once.
        storage, storage_dir: pearll's ``"memory"`` or ``"memmap"`` storage.

    ``sample(batch_size, env=None)`` returns SB3's ``ReplayBufferSamples`` (``discounts`` set
    by :class:`NStepReplayBuffer` only).
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Space,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        *,
        seed: int | np.random.Generator | None = None,
        min_episode_length: int | None = None,
        frame_stack: int | None = None,
        channels_order: str | None = None,
        storage: str = "memory",
        storage_dir: Any = None,
    ) -> None:
        self._storage_options = {"storage": storage, "storage_dir": storage_dir}
        self._setup(
            buffer_size, observation_space, action_space, device, n_envs,
            optimize_memory_usage, handle_timeout_termination, seed, min_episode_length,
            frame_stack, channels_order,
        )  # fmt: skip

    def _checkpoint_options(self) -> dict[str, Any]:
        layout = self.layout
        return {"frame_stack": layout.frame_stack, "channels_order": layout.channels_order,
                **self._storage_options}  # fmt: skip

    def _pearll_options(self) -> dict[str, Any]:
        return {"frame_stack": self.layout.pearll_frame_stack(), **self._storage_options}

    def _make_pearll(self, env: SpacesOnly, rows: int, rng: np.random.Generator) -> Any:
        return PearllReplayBuffer(env, rows, "cpu", seed=rng, **self._pearll_options())

    def sample(self, batch_size: int, env: Any = None) -> ReplayBufferSamples:
        """``batch_size`` transitions as SB3's ``ReplayBufferSamples`` on ``self.device``."""
        return ReplayBufferSamples(**self._sample_fields(self._draw(batch_size), env))


class NStepReplayBuffer(ReplayBuffer, sb3_buffers.NStepReplayBuffer):
    """SB3's ``NStepReplayBuffer`` on pearll's n-step returns (``n_steps``, ``gamma``).

    Each sample spans up to ``n_steps`` steps of its episode: ``rewards`` the discounted sum,
    ``next_observations`` the observation after the last step spanned, ``dones`` whether that
    step terminated, ``discounts`` ``gamma ** k`` for the k steps spanned (fewer at an episode
    end, a truncation, a restart or the newest step). Unlike SB3's, a sum never runs across a
    step that did not follow on (a restart ends the episode). With a ``VecNormalize`` env the
    discounted sum is normalised (SB3 normalises each step's reward; the same unless clipped).
    ``optimize_memory_usage`` is accepted.
    """

    def __init__(self, *args: Any, n_steps: int = 3, gamma: float = 0.99, **kwargs: Any) -> None:
        self.n_steps, self.gamma = n_steps, gamma
        super().__init__(*args, **kwargs)

    def _pearll_options(self) -> dict[str, Any]:
        return {**super()._pearll_options(), "n_step": self.n_steps, "gamma": self.gamma}

    def _checkpoint_options(self) -> dict[str, Any]:
        return {**super()._checkpoint_options(), "n_steps": self.n_steps, "gamma": self.gamma}


class DictReplayBuffer(PearllAdapter, sb3_buffers.DictReplayBuffer):
    """SB3's ``DictReplayBuffer`` on a pearll ``ReplayBuffer`` with Dict observations.

    Arguments as :class:`ReplayBuffer` (no frame stacks); ``optimize_memory_usage`` is accepted.
    ``sample`` returns SB3's ``DictReplayBufferSamples``.
    """

    def __init__(
        self,
        buffer_size: int,
        observation_space: spaces.Dict,
        action_space: spaces.Space,
        device: th.device | str = "auto",
        n_envs: int = 1,
        optimize_memory_usage: bool = False,
        handle_timeout_termination: bool = True,
        *,
        seed: int | np.random.Generator | None = None,
        min_episode_length: int | None = None,
        storage: str = "memory",
        storage_dir: Any = None,
    ) -> None:
        if not isinstance(observation_space, spaces.Dict):
            raise TypeError(
                f"{type(self).__name__}: expected a Dict observation space, got "
                f"{observation_space}; use ReplayBuffer"
            )
        self._storage_options = {"storage": storage, "storage_dir": storage_dir}
        self._setup(
            buffer_size, observation_space, action_space, device, n_envs,
            optimize_memory_usage, handle_timeout_termination, seed, min_episode_length,
            None, None,
        )  # fmt: skip

    def _checkpoint_options(self) -> dict[str, Any]:
        return dict(self._storage_options)

    def _make_pearll(self, env: SpacesOnly, rows: int, rng: np.random.Generator) -> Any:
        return PearllReplayBuffer(
            env, rows, "cpu", seed=rng, frame_stack=None, **self._storage_options
        )

    def sample(self, batch_size: int, env: Any = None) -> DictReplayBufferSamples:
        """``batch_size`` transitions as SB3's ``DictReplayBufferSamples`` on ``self.device``."""
        return DictReplayBufferSamples(**self._sample_fields(self._draw(batch_size), env))
