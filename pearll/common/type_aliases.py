"""The records buffers return and the types of what goes into them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

import numpy as np

# An observation is an array, or a dict of arrays for gymnasium Dict spaces (nested dicts allowed).
Observation = np.ndarray | dict[str, Any]


@dataclass
class Trajectories:
    """A batch of transitions (s, a, r, s', terminated).

    Shapes, for a batch of B transitions of an env whose observation has shape ``obs_shape``:
    ``(B, *obs_shape)`` from a single env, ``(E, B, *obs_shape)`` from E sub-envs, or with
    ``flatten_env=True`` ``(B, *obs_shape)`` from the replay buffers' ``sample`` (B in all) and
    ``(E * B, *obs_shape)`` from ``last`` and RolloutBuffer's ``sample``. ``actions`` has the
    action's shape
    (``(..., 1)`` for Discrete); ``rewards`` and ``dones`` have a trailing axis of 1 and dtype
    float32, so ``1 - dones`` works as a TD mask. ``dones`` is 1 only for a termination: a
    truncated transition has ``dones == 0`` and its ``next_observations`` is the true final
    observation, so the TD target bootstraps from it.

    ``discounts`` is set only by buffers built with ``n_step`` (else None): float32, shaped like
    ``rewards``, ``gamma ** k`` for the k steps the sample actually spans (fewer than n at an
    episode end or at the newest transition), so the TD target is
    ``rewards + discounts * (1 - dones) * V(next_observations)``; ``rewards`` is then the
    discounted sum over those k steps and ``next_observations`` the observation k steps on.

    ``extras`` holds the buffer's declared extra fields (name -> array of shape batch axes + the
    field's shape), empty if none; with ``n_step``, those of each sample's first step.
    """

    observations: Any
    actions: Any
    rewards: Any
    next_observations: Any
    dones: Any
    discounts: Any = None
    extras: dict[str, Any] = field(default_factory=dict)


@dataclass
class DictTrajectories(Trajectories):
    """Trajectories whose observations and next_observations are dicts of arrays, one per key."""


@dataclass(kw_only=True)
class PrioritizedTrajectories(Trajectories):
    """Trajectories from prioritized replay, with what ``update_priorities`` and the loss need.

    ``indices``: int64, shape ``(B,)`` or ``(E, B)`` like the batch axes: the slot
    of each sample (``row * num_envs + env``; the row itself for a single env), to pass back to
    ``update_priorities``. ``weights``: float32, shaped like ``rewards`` (trailing axis of 1),
    the importance weights ``(N * P(i)) ** -beta / max weight`` to multiply the per-sample
    loss by. Observations may be dicts, as in :class:`DictTrajectories`.
    """

    indices: Any
    weights: Any


@dataclass
class RolloutBatch:
    """A minibatch of B stored transitions for an on-policy update (PPO and kin).

    ``observations`` ``(B, *obs_shape)`` (a dict of arrays for Dict spaces), ``actions``
    ``(B, *act_shape)`` (``(B, 1)`` int64 for Discrete), ``values`` (V(s) as given to
    ``compute_advantages``), ``advantages`` and ``returns`` ``(B,)`` float32; ``extras`` the
    buffer's declared extra fields, ``(B, *shape)`` each. numpy arrays or torch tensors.
    """

    observations: Any
    actions: Any
    values: Any
    advantages: Any
    returns: Any
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def log_probs(self) -> Any:
        """The extra field ``log_prob``: log-probabilities of the actions when they were taken."""
        if "log_prob" not in self.extras:
            raise KeyError(
                "log_probs: the buffer has no extra field 'log_prob'; declare it with "
                "extra_fields={'log_prob': ((), np.float32)} and pass log_prob= when adding"
            )
        return self.extras["log_prob"]


@dataclass(kw_only=True)
class SequenceTrajectories:
    """A batch of windows of consecutive steps, from ``sample_sequences`` (recurrent agents).

    Every array has the batch axes, then time: ``(B, T, ...)`` from a single env,
    ``(E, B, T, ...)`` from E sub-envs (window ``[e, b]`` from sub-env e), or ``(E * B, T, ...)``
    with ``flatten_env=True``, where ``T = burn_in + length``. Step ``burn_in`` of each window is
    its anchor (its first learned step); steps before it are burn-in.

    ``observations``, ``next_observations`` (dicts of arrays for Dict spaces), ``actions``,
    ``rewards`` and ``dones`` (float32, trailing axis of 1; ``dones`` is 1 for a termination),
    ``truncateds`` (bool, trailing axis of 1), ``extras`` (name -> array) are the stored steps;
    padding is zeros. ``mask`` (float32, batch axes + ``(T,)``): 1 where step t is a stored
    transition of the window, 0 for padding; ``learn_mask``: ``mask`` with the burn-in zeroed;
    ``is_first`` (bool, batch axes + ``(T,)``): step t starts an episode. ``indices`` (int64,
    batch axes): the slot of each window's anchor (``row * num_envs + env``; the row for a
    single env), for ``update_priorities`` and ``update_extras``. ``weights`` (float32, batch
    axes + ``(1,)``): importance weights from prioritized replay, else None.
    """

    observations: Any
    actions: Any
    rewards: Any
    next_observations: Any
    dones: Any
    truncateds: Any
    extras: dict[str, Any]
    mask: Any
    learn_mask: Any
    is_first: Any
    indices: Any
    weights: Any = None


class PoolSlots(NamedTuple):
    """Slots drawn from a replay buffer's whole pool (``draw_slots``): every stored transition
    of every sub-env, as if one buffer of one env held them.

    ``envs``, ``rows`` (k,) int64: each draw's sub-env and row (its slot, the ``indices`` of
    ``sample``, is ``row * num_envs + env``); ``masses`` (k,) float64: each draw's mass ``p_i``
    (1 for uniform replay; ``(priority + eps) ** alpha`` for prioritized replay), so that the
    draw had probability ``p_i / PoolMass.mass``.
    """

    envs: np.ndarray
    rows: np.ndarray
    masses: np.ndarray


class PoolMass(NamedTuple):
    """A replay buffer's pool in figures (``pool_mass``): ``count`` transitions stored,
    ``mass`` their total mass (``count`` for uniform replay, the sum of stored priorities for
    prioritized replay) and ``min_mass``, the smallest positive mass (inf if none)."""

    count: int
    mass: float
    min_mass: float
