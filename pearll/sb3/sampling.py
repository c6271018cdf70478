"""How a pearll.sb3 buffer samples: pearll records drawn per sub-env, turned into SB3's tensors.

``batch_size`` transitions in all, each sub-env equally likely (as SB3 draws sub-envs
uniformly), uniform within it; tensors on ``self.device`` as it is when sampling (SB3 reassigns
it after ``load_replay_buffer``); observations and rewards normalised through a ``VecNormalize``
``env``.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

import numpy as np
import torch as th


class Sampling:
    """The sampling half of :class:`pearll.sb3.adapter.PearllAdapter`."""

    pearll_buffer: Any
    layout: Any
    n_envs: int
    device: Any

    def _draw(self, batch_size: int) -> Any:
        """A pearll record of ``batch_size`` transitions: each sub-env equally likely."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
            raise TypeError(f"batch_size: expected a positive int, got {batch_size!r}")
        per_env = -(-int(batch_size) // self.n_envs)
        # per_env from each sub-env (SB3 draws sub-envs uniformly), the env axis then merged.
        record = self.pearll_buffer.sample(per_env)
        if self.pearll_buffer.env_info.is_vector:
            record = map_record(record, lambda a: a.reshape(-1, *a.shape[2:]))
        record = self._after_draw(record, per_env)
        if per_env * self.n_envs == batch_size:
            return record
        pick = self.pearll_buffer.rng.choice(per_env * self.n_envs, batch_size, replace=False)
        return map_record(record, lambda array: array[np.sort(pick)])

    def _after_draw(self, record: Any, per_env: int) -> Any:
        """Hook: the record of ``per_env`` draws from each sub-env (sub-env major) before a
        batch that is not a multiple of ``n_envs`` is cut down."""
        return record

    def _tensor(self, array: np.ndarray) -> th.Tensor:
        return th.as_tensor(np.ascontiguousarray(array), device=self.device)

    def _tensors(self, value: Any) -> Any:
        if isinstance(value, dict):
            return {key: self._tensor(leaf) for key, leaf in value.items()}
        return self._tensor(value)

    def _sample_fields(self, record: Any, env: Any) -> dict[str, Any]:
        """SB3's sample fields (tensors) of a pearll record, normalised through ``env``."""
        out = self.layout.observations_out
        observations = self._normalize_obs(out(record.observations), env)
        next_observations = self._normalize_obs(out(record.next_observations), env)
        rewards = self._normalize_reward(record.rewards, env)
        discounts = record.discounts
        return {
            "observations": self._tensors(observations),
            "actions": self._tensor(record.actions),
            "next_observations": self._tensors(next_observations),
            "dones": self._tensor(record.dones),
            "rewards": self._tensor(rewards),
            "discounts": None if discounts is None else self._tensor(discounts),
        }

    def _get_samples(self, batch_inds: np.ndarray, env: Any = None) -> Any:
        raise NotImplementedError(
            f"{type(self).__name__} draws its own rows: call sample(batch_size, env)"
        )


def map_record(record: Any, fn: Any) -> Any:
    """The record with ``fn`` applied to every array of every field (None stays None)."""
    values = {f.name: _map_tree(getattr(record, f.name), fn) for f in fields(record)}
    return type(record)(**values)


def _map_tree(value: Any, fn: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, dict):
        return {key: _map_tree(leaf, fn) for key, leaf in value.items()}
    return fn(value)
