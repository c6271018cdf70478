"""Checking what the caller adds and putting it in one shape: ``(T, E, ...)`` per field.

Everything is validated here, before anything is written, so bad input leaves a buffer exactly
as it was. Shapes accepted: one step of a single env (no batch axes), one vector step (``E``
first), a batch of single-env steps (``T`` first), a batch of vector steps (``T, E`` first).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pearll.buffers.core.env_info import EnvInfo, substitute_final_observations
from pearll.buffers.core.rewards import coerce_rewards
from pearll.buffers.core.spaces import SCALAR_BOOL, coerce
from pearll.common.tree import tree_map


@dataclass
class StepBatch:
    """T steps of E sub-envs; every array has shape ``(T, E, ...)``."""

    observations: Any
    actions: np.ndarray
    rewards: np.ndarray
    next_observations: Any
    dones: np.ndarray
    truncateds: np.ndarray
    extras: dict[str, np.ndarray]
    # Steps that end their episode without a flag (add_batch_trajectories' episode_ends).
    episode_ends: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.rewards)

    def slice(self, start: int, stop: int) -> StepBatch:
        """Steps ``start:stop`` (views)."""
        part = {
            name: tree_map(lambda a: a[start:stop], getattr(self, name))
            for name in ("observations", "actions", "rewards", "next_observations", "dones",
                         "truncateds", "extras")
        }  # fmt: skip
        ends = None if self.episode_ends is None else self.episode_ends[start:stop]
        return StepBatch(**part, episode_ends=ends)

    @property
    def ended(self) -> np.ndarray:
        """``(T, E)``: the step terminated or truncated its episode (or was declared its end)."""
        ended = (self.dones | self.truncateds)[..., 0]
        return ended if self.episode_ends is None else ended | self.episode_ends[..., 0]


def steps_from_args(
    info: EnvInfo,
    specs: dict[str, Any],
    observation: Any,
    action: Any,
    reward: Any,
    next_observation: Any,
    done: Any,
    truncated: Any,
    infos: Sequence[dict | None] | None,
    num_steps: int | None,
    extras: dict[str, Any] | None = None,
    episode_ends: Any = None,
) -> StepBatch:
    """Validate and reshape one step (``num_steps=None``) or a batch of ``num_steps`` steps.

    ``extras`` holds the values of the buffer's declared extra fields (``specs["extras"]``):
    every declared field must be given, and nothing else. ``episode_ends`` (bool, shaped like
    ``done``, or None) marks steps that end their episode with neither flag set.
    """
    env_lead = (info.num_envs,) if info.is_vector else ()
    lead = env_lead if num_steps is None else (num_steps, *env_lead)
    fields = {
        "observations": coerce(observation, specs["observations"], lead, "observation"),
        "actions": coerce(action, specs["actions"], lead, "action", check_range=True),
        "rewards": coerce_rewards(reward, lead),
        "dones": coerce(done, SCALAR_BOOL, lead, "done").astype(bool),
        "truncateds": coerce(truncated, SCALAR_BOOL, lead, "truncated").astype(bool),
    }
    ended = (fields["dones"] | fields["truncateds"])[..., 0].reshape(-1, info.num_envs)
    next_observation = _true_next_observations(info, next_observation, infos, ended, num_steps)
    fields["next_observations"] = coerce(
        next_observation, specs["observations"], lead, "next_observation"
    )
    fields["extras"] = _extras(specs.get("extras", {}), extras or {}, lead)
    if episode_ends is not None:
        fields["episode_ends"] = coerce(episode_ends, SCALAR_BOOL, lead, "episode_ends")
        fields["episode_ends"] = fields["episode_ends"].astype(bool)
    to_batch = _batch_axes(info.is_vector, num_steps is None)
    return StepBatch(**{name: tree_map(to_batch, tree) for name, tree in fields.items()})


def _extras(specs: dict[str, Any], extras: dict[str, Any], lead: tuple) -> dict[str, Any]:
    if set(extras) != set(specs):
        raise ValueError(
            f"extra fields: expected keyword arguments {sorted(specs)} (declared with "
            f"extra_fields), got {sorted(extras)}"
        )
    return {name: coerce(extras[name], spec, lead, name) for name, spec in specs.items()}


def _batch_axes(is_vector: bool, single_step: bool):
    """A function adding the missing T and/or E axes in front of an array."""
    missing = (1 if single_step else 0, 0 if is_vector else 1)

    def add_axes(array: np.ndarray) -> np.ndarray:
        if missing[0]:
            array = array[None]
        if missing[1]:
            array = array[:, None]
        return array

    return add_axes


def _true_next_observations(
    info: EnvInfo,
    next_observation: Any,
    infos: Any,
    ended: np.ndarray,
    num_steps: int | None,
) -> Any:
    """SAME_STEP vector envs report the final observation in info: put it in place."""
    if not info.is_vector or not ended.any():
        return next_observation
    if num_steps is None:
        return substitute_final_observations(next_observation, infos, ended[0], info.autoreset_mode)
    if infos is None:
        infos = [None] * num_steps
    if len(infos) != num_steps:
        raise ValueError(f"infos: expected {num_steps} info dicts, one per step, got {len(infos)}")
    per_step = [
        substitute_final_observations(
            tree_map(lambda a, t=t: np.asarray(a)[t], next_observation),
            infos[t],
            ended[t],
            info.autoreset_mode,
        )
        for t in range(num_steps)
    ]
    return tree_map(lambda *steps: np.stack(steps), *per_step)
