"""n-step returns, computed at sample time from the one-observation-array layout of ReplayBuffer.

A sample starting at row r walks forward over rows r, r+1, ..., r+n-1 of its sub-env and stops
early after a step that ended its episode (terminated or truncated) or before a row that holds
no transition. In that layout the row after an episode's last step holds its final observation
and is not a transition, and the row after the newest transition is the pending row, also not
one; so the walk never crosses an episode boundary, never reads past the newest transition and,
moving only towards newer rows, never reaches overwritten data.

For the k steps walked (1 <= k <= n): reward ``sum_{i<k} gamma**i * r_{t+i}``, next observation
the one after step k-1 (the episode's final observation if it ended there), ``dones`` the
termination flag of step k-1 (no earlier step can have ended the episode) and discount
``gamma**k``. Everything is a handful of array operations on ``(E, B, n)`` index arrays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from pearll.buffers.reading.gather import Reader, env_column


@dataclass
class NStepReturns:
    """Per sample, shapes ``(E, B, 1)`` float32 except ``last_rows`` ``(E, B)`` int64."""

    rewards: np.ndarray
    discounts: np.ndarray
    last_rows: np.ndarray  # the row of each sample's last step


def nstep_returns(
    storage: dict[str, Any],
    valid: np.ndarray,
    rows: np.ndarray,
    envs: np.ndarray,
    n_step: int,
    gamma: float,
) -> NStepReturns:
    """Returns of the samples starting at ``rows`` ``(E, B)`` (each a valid row) of ``envs``.

    ``storage`` holds ``rewards``, ``dones`` (float32) and ``truncateds`` (bool), each
    ``(capacity, num_envs, 1)``; ``valid`` ``(capacity, num_envs)`` marks the transition rows;
    ``envs`` is the ``(E, 1)`` column of sub-env indices.
    """
    capacity = valid.shape[0]
    offsets = np.arange(n_step)
    steps = (rows[..., None] + offsets) % capacity  # (E, B, n)
    env = envs[..., None]
    ended = (storage["dones"][steps, env, 0] != 0) | storage["truncateds"][steps, env, 0]
    # Step i > 0 is walked if every step before it was walked and did not end the episode, and
    # its row holds a transition (else it is a final-observation row or the pending row).
    walked = np.ones(steps.shape, dtype=bool)
    walked[..., 1:] = np.logical_and.accumulate(
        valid[steps[..., 1:], env] & ~ended[..., :-1], axis=-1
    )
    powers = np.float64(gamma) ** offsets
    rewards = (storage["rewards"][steps, env, 0] * powers * walked).sum(axis=-1)
    length = walked.sum(axis=-1)
    return NStepReturns(
        rewards=rewards[..., None].astype(np.float32),
        discounts=(np.float64(gamma) ** length)[..., None].astype(np.float32),
        last_rows=(rows + length - 1) % capacity,
    )


class NStepReader:
    """A :class:`Reader` whose transitions span up to ``n_step`` steps of their episode: the
    same ``gather``, with ``rewards`` the discounted sums, ``next_observations`` and ``dones``
    read at each sample's last step, and ``discounts`` ``(E, B, 1)`` float32 ``gamma ** k``.

    ``valid``: the ring's ``(capacity, E)`` transition mask (updated in place by the ring)."""

    def __init__(self, reader: Reader, valid: np.ndarray, n_step: int, gamma: float) -> None:
        self.reader, self.valid, self.n_step, self.gamma = reader, valid, n_step, gamma

    def gather(
        self, rows: np.ndarray, envs: Any = None, last_rows: np.ndarray | None = None
    ) -> dict[str, Any]:
        """``Reader.gather`` of n-step samples starting at ``rows`` (``last_rows``: unused,
        worked out here)."""
        reader = self.reader
        returns = nstep_returns(
            reader.views, self.valid, rows, env_column(reader.num_envs, envs), self.n_step,
            self.gamma,
        )  # fmt: skip
        gathered = reader.gather(rows, envs, returns.last_rows)
        gathered["rewards"] = returns.rewards
        gathered["discounts"] = returns.discounts
        return gathered
