"""What a buffer needs to know about the env it serves: spaces, sub-env count, autoreset mode.

Gymnasium vector envs reset finished sub-envs by themselves, in one of three modes
(``env.metadata["autoreset_mode"]``), and each needs its own handling to store exact
transitions:

- NEXT_STEP (default): the step *after* an episode's end is a reset step (its action is
  ignored, its next observation is the new episode's first). The buffer drops it.
- SAME_STEP: the ending step already returns the new episode's first observation; the true
  final one is in ``info["final_obs"][i]`` where ``info["_final_obs"][i]`` is set.
- DISABLED: the caller resets sub-envs itself, as with a single env.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from gymnasium import spaces
from gymnasium.vector import AutoresetMode


@dataclass(frozen=True)
class EnvInfo:
    """The per-sub-env spaces, the number of sub-envs and how they reset."""

    observation_space: spaces.Space
    action_space: spaces.Space
    num_envs: int
    is_vector: bool
    autoreset_mode: AutoresetMode

    @classmethod
    def of(cls, env: Any, autoreset_mode: AutoresetMode | str | None = None) -> EnvInfo:
        """Read ``env``: a gymnasium Env, a VectorEnv, or anything with the same attributes.

        An object with ``num_envs`` is a vector env; its per-sub-env spaces are
        ``single_observation_space``/``single_action_space`` when it has them, else
        ``observation_space``/``action_space``. ``autoreset_mode`` overrides the env's metadata.
        """
        if not all(
            hasattr(env, kind) or hasattr(env, f"single_{kind}")
            for kind in ("observation_space", "action_space")
        ):
            raise TypeError(
                "env: expected a gymnasium Env or VectorEnv (anything with observation_space and "
                f"action_space), got {type(env).__name__}"
            )
        num_envs = getattr(env, "num_envs", None)
        is_vector = num_envs is not None
        if is_vector and (
            isinstance(num_envs, bool) or not isinstance(num_envs, int | np.integer) or num_envs < 1
        ):
            raise ValueError(f"env.num_envs: expected an int >= 1, got {num_envs!r}")
        if is_vector:
            obs_space = _first_attribute(env, "single_observation_space", "observation_space")
            act_space = _first_attribute(env, "single_action_space", "action_space")
        else:
            obs_space, act_space = env.observation_space, env.action_space
        if autoreset_mode is None:
            metadata = getattr(env, "metadata", None) or {}
            autoreset_mode = metadata.get("autoreset_mode", AutoresetMode.NEXT_STEP)
        mode = _parse_mode(autoreset_mode) if is_vector else AutoresetMode.DISABLED
        return cls(obs_space, act_space, int(num_envs) if is_vector else 1, is_vector, mode)


def _first_attribute(env: Any, *names: str) -> Any:
    """The first of ``names`` that ``env`` has (so a vector-like object needs only one)."""
    for name in names[:-1]:
        value = getattr(env, name, None)
        if value is not None:
            return value
    return getattr(env, names[-1])


def _parse_mode(mode: AutoresetMode | str) -> AutoresetMode:
    if isinstance(mode, AutoresetMode):
        return mode
    for member in AutoresetMode:
        if str(mode).lower() in (member.value.lower(), member.name.lower()):
            return member
    choices = ", ".join(m.name for m in AutoresetMode)
    raise ValueError(f"autoreset_mode: expected one of {choices}, got {mode!r}")


def reset_steps(ended: np.ndarray, prev_ended: np.ndarray, mode: AutoresetMode) -> np.ndarray:
    """Which steps of a ``(T, E)`` batch are NEXT_STEP reset steps, to be dropped.

    ``ended`` marks steps that terminated or truncated; ``prev_ended`` is the same flag for the
    step before the batch (per sub-env). In NEXT_STEP mode a step directly after an end is a
    reset step; no step is one in the other modes.
    """
    if mode is not AutoresetMode.NEXT_STEP or len(ended) == 0:  # (T = 0: nothing to drop)
        return np.zeros(ended.shape, dtype=bool)
    before = np.empty_like(ended)
    before[0] = prev_ended
    before[1:] = ended[:-1]
    return before


def substitute_final_observations(
    next_observation: Any, info: dict | None, ended: np.ndarray, mode: AutoresetMode
) -> Any:
    """The true next observations of one vector step: SAME_STEP's ``final_obs`` where set.

    ``next_observation`` has the env axis first (an array or a dict of arrays); ``ended`` is
    ``(E,)``. Raises ValueError if a SAME_STEP sub-env ended without a final observation in info.
    """
    if mode is not AutoresetMode.SAME_STEP or not ended.any():
        return next_observation
    if info is not None and not isinstance(info, dict):
        raise TypeError(f"info: expected the vector env's info dict, got {type(info).__name__}")
    mask = np.asarray((info or {}).get("_final_obs", np.zeros_like(ended)), dtype=bool)
    if mask.shape != ended.shape:
        raise ValueError(
            f"info['_final_obs']: expected a bool array of shape {ended.shape} (one flag per "
            f"sub-env), got shape {mask.shape}"
        )
    missing = ended & ~mask
    if missing.any():
        raise ValueError(
            f"autoreset mode SAME_STEP: sub-envs {np.flatnonzero(missing).tolist()} ended but "
            "info has no 'final_obs' for them; pass the info dict the vector env returned"
        )
    final = info.get("final_obs")
    if final is None or not hasattr(final, "__getitem__") or len(final) != len(ended):
        raise ValueError(
            f"info['final_obs']: expected one final observation per sub-env ({len(ended)}), got "
            f"{type(final).__name__}"
            + (f" of length {len(final)}" if hasattr(final, "__len__") else "")
        )
    if isinstance(next_observation, dict):
        return {
            key: _replace_rows(value, mask, [final[i][key] for i in np.flatnonzero(mask)])
            for key, value in next_observation.items()
        }
    return _replace_rows(next_observation, mask, [final[i] for i in np.flatnonzero(mask)])


def _replace_rows(array: Any, mask: np.ndarray, rows: list[Any]) -> np.ndarray:
    out = np.array(array, copy=True)
    for row, env in zip(rows, np.flatnonzero(mask).tolist(), strict=True):
        if np.shape(row) != out.shape[1:] or np.asarray(row).dtype == object:
            raise ValueError(
                f"info['final_obs'][{env}]: expected an observation of shape {out.shape[1:]}, "
                f"got {type(row).__name__} of shape {np.shape(row)}"
            )
    out[mask] = np.stack([np.asarray(r) for r in rows]).reshape(out[mask].shape)
    return out
