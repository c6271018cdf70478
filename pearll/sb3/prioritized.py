"""PrioritizedReplayBuffer for SB3: pearll's proportional prioritized replay behind SB3's API.

SB3 has no prioritized replay of its own; this one subclasses SB3's ``ReplayBuffer`` (through
:class:`pearll.sb3.ReplayBuffer`) so any off-policy algorithm accepts it, and
:class:`pearll.sb3.PrioritizedDQN` uses its weights and updates its priorities.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np
import torch as th

from pearll.buffers import PrioritizedReplayBuffer as PearllPrioritizedReplayBuffer
from pearll.sb3.layout import SpacesOnly
from pearll.sb3.replay import ReplayBuffer


class PrioritizedReplayBufferSamples(NamedTuple):
    """SB3's ``ReplayBufferSamples`` fields, plus what prioritized replay needs.

    ``weights``: ``(B, 1)`` float32 tensor on the buffer's device, the importance weights
    ``(N * P(i)) ** -beta / max weight`` to multiply each sample's loss by. ``indices``:
    ``(B,)`` int64 numpy array, the slot of each sample, to pass back to ``update_priorities``.
    """

    observations: th.Tensor
    actions: th.Tensor
    next_observations: th.Tensor
    dones: th.Tensor
    rewards: th.Tensor
    discounts: th.Tensor | None
    weights: th.Tensor
    indices: np.ndarray


class PrioritizedReplayBuffer(ReplayBuffer):
    """Proportional prioritized replay (Schaul et al. 2016) as an SB3 replay buffer.

    Args: those of :class:`pearll.sb3.ReplayBuffer`, plus (keywords of
    ``replay_buffer_kwargs``) ``alpha`` (0.6), ``beta`` (0.4), ``beta_steps`` (None: beta stays
    fixed; else it grows linearly to 1 over that many ``sample`` calls), ``eps`` (1e-6, added
    to every priority), and ``n_steps``/``gamma`` for n-step returns (``n_steps=1``: one-step
    transitions, ``discounts`` None).

    New transitions get the largest priority so far. Each sub-env is drawn from equally often,
    in proportion to priority ** alpha within it (pearll's vector-env rule; one env: plain PER).
    """

    def __init__(
        self,
        *args: Any,
        alpha: float = 0.6,
        beta: float = 0.4,
        beta_steps: int | None = None,
        eps: float = 1e-6,
        n_steps: int = 1,
        gamma: float = 0.99,
        **kwargs: Any,
    ) -> None:
        self._priority_options = {"alpha": alpha, "beta": beta, "eps": eps,
                                  "beta_steps": beta_steps}  # fmt: skip
        self.n_steps, self.gamma = n_steps, gamma
        super().__init__(*args, **kwargs)

    def _make_pearll(self, env: SpacesOnly, rows: int, rng: np.random.Generator) -> Any:
        nstep = {"n_step": self.n_steps, "gamma": self.gamma} if self.n_steps > 1 else {}
        return PearllPrioritizedReplayBuffer(
            env, rows, device="cpu", seed=rng, **self._priority_options,
            **nstep, **self._pearll_options(),
        )  # fmt: skip

    def _checkpoint_options(self) -> dict[str, Any]:
        return {**super()._checkpoint_options(), **self._priority_options,
                "n_steps": self.n_steps, "gamma": self.gamma}  # fmt: skip

    @property
    def beta(self) -> float:
        """The importance-sampling exponent the next ``sample`` uses."""
        return self.pearll_buffer.beta

    def sample(self, batch_size: int, env: Any = None) -> PrioritizedReplayBufferSamples:
        """``batch_size`` transitions drawn by priority, with their weights and indices."""
        record = self._draw(batch_size)
        fields = self._sample_fields(record, env)
        weights = self._tensor(record.weights)
        return PrioritizedReplayBufferSamples(
            **fields, weights=weights, indices=np.asarray(record.indices)
        )

    def update_priorities(self, indices: Any, td_errors: Any) -> None:
        """New priorities ``|td_errors|`` (numpy or torch, shape ``(B,)`` or ``(B, 1)``) for
        the samples ``indices`` that ``sample`` returned; stored as ``(|td| + eps) ** alpha``.
        """
        if hasattr(td_errors, "detach"):
            td_errors = td_errors.detach().cpu().numpy()
        self.pearll_buffer.update_priorities(indices, np.abs(np.asarray(td_errors)))
