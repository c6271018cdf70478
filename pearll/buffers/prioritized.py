"""PrioritizedReplayBuffer: proportional prioritized replay (Schaul et al. 2016) on ReplayBuffer.

Priorities live in a :class:`~pearll.buffers.sampling.sum_tree.SumTree` with one tree per
sub-env and one leaf per row. A leaf is positive exactly when its row holds a stored
transition: rows that hold an episode's final observation, the pending row and overwritten rows
are set to zero in the same call that writes the ring, so they can never be drawn.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pearll.buffers.base import locked
from pearll.buffers.prioritized_sampling import PrioritizedSampling
from pearll.buffers.replay import ReplayBuffer
from pearll.buffers.sampling.priorities import Priorities
from pearll.buffers.sampling.sum_tree import SumTree
from pearll.buffers.sampling.window_memory import sequence_priorities
from pearll.buffers.writing.writer import Written
from pearll.common.arguments import check_int


class PrioritizedReplayBuffer(PrioritizedSampling, ReplayBuffer):
    """Replay that draws transitions in proportion to ``priority ** alpha``.

    Args:
        env, buffer_size, device: as for :class:`ReplayBuffer` (so are the keyword-only
            ``n_step``, ``gamma``, ``seed`` and ``autoreset_mode``).
        alpha: how much prioritization is used, >= 0 (0 is uniform).
        beta: importance-sampling exponent, >= 0 (1 fully corrects the bias); see ``beta``.
        eps: added to every priority given to ``update_priorities``, >= 0, so that a transition
            with zero TD error can still be drawn.
        beta_steps: if given, ``beta`` grows linearly from its initial value to 1 over this
            many ``sample`` (and ``sample_sequences``) calls and then stays at 1 (annealing as
            in the paper).
        eta: how a sequence's priority mixes the largest and the mean ``|TD error|`` of its
            learned steps, in [0, 1] (R2D2's 0.9 by default); see ``update_priorities``.

    New transitions get the largest priority given so far (1 before any update), so each is
    likely to be replayed at least once. ``sample`` returns :class:`PrioritizedTrajectories`
    (``indices`` and ``weights`` besides the usual fields).

    Vector envs: like ``ReplayBuffer.sample``, each sub-env is drawn independently, B samples
    each, in proportion to priority ** alpha among that sub-env's transitions; the env axis of
    the output keeps meaning "sub-env e" (shapes ``(E, B, ...)``; with ``flatten_env``, B in
    all drawn by priority over every sub-env, see :meth:`_sample_flat`). With
    equal priorities this is exactly the uniform ReplayBuffer's distribution, and all weights
    are 1. The weight of sample i from sub-env e is ``(N_e * P_e(i)) ** -beta`` (``N_e``
    transitions in sub-env e, ``P_e(i)`` the probability of drawing i there), divided by the
    largest such weight over the whole buffer, so weights share one scale across sub-envs and
    never exceed 1. Draws are stratified: sub-env e's total priority is cut into B equal
    segments and one sample is drawn from each (lower variance; every draw still has
    probability ``P_e(i)``). The draws (``sample``, sequence anchors, the pooled
    ``draw_slots`` and ``pool_mass``) are in :mod:`pearll.buffers.prioritized_sampling`.
    """

    def __init__(
        self,
        env: Any,
        buffer_size: int,
        alpha: float = 0.6,
        beta: float = 0.4,
        eps: float = 1e-6,
        device: Any = "auto",
        *,
        beta_steps: int | None = None,
        eta: float = 0.9,
        **kwargs: Any,
    ) -> None:
        self.eta = _check_non_negative(eta, "eta")
        if self.eta > 1:
            raise ValueError(f"eta: expected a float in [0, 1], got {eta!r}")
        self.alpha = _check_non_negative(alpha, "alpha")
        self.eps = _check_non_negative(eps, "eps")
        self._beta_start = _check_non_negative(beta, "beta")
        if beta_steps is not None:
            beta_steps = check_int(beta_steps, "beta_steps", 1, "an int >= 1 or None", ValueError)
        self.beta_steps = beta_steps
        super().__init__(env, buffer_size, device, **kwargs)
        names = ("alpha", "eps", "eta", "beta_steps")
        self._record_settings_from(**dict(zip(names, names, strict=True)), beta="_beta_start")
        self._priorities = Priorities(self.num_envs, self.buffer_size)
        self._parts.add("priorities", self._priorities)
        self._observers.append(self._priorities_written)
        self._repairs.append(self._repair_priorities)

    sized_parts = (*ReplayBuffer.sized_parts, Priorities)

    # The priorities part's state, under the names the sampling code reads.
    @property
    def _tree(self) -> SumTree:
        return self._priorities.tree

    @property
    def _max_priority(self) -> float:
        return self._priorities.max_priority

    @_max_priority.setter
    def _max_priority(self, value: float) -> None:
        self._priorities.max_priority = value

    @property
    def _samples_drawn(self) -> int:
        return self._priorities.samples_drawn

    @_samples_drawn.setter
    def _samples_drawn(self, value: int) -> None:
        self._priorities.samples_drawn = value

    @property
    def beta(self) -> float:
        """The importance-sampling exponent the next ``sample`` uses.

        With ``beta_steps`` it follows the linear schedule to 1; setting it fixes it at the
        value set and ends the schedule.
        """
        if self.beta_steps is None:
            return self._beta_start
        progress = min(1.0, self._samples_drawn / self.beta_steps)
        return self._beta_start + (1.0 - self._beta_start) * progress

    @beta.setter
    def beta(self, value: float) -> None:
        self._beta_start = _check_non_negative(value, "beta")
        self.beta_steps = None

    def _priorities_written(self, written: Written) -> None:
        """The write observer: slots passed over get priority 0, new transitions the max."""
        # One tree call: later entries win, and the new rows are among those passed over.
        new = np.full(len(written.rows), self._max_priority**self.alpha)
        self._tree.update(
            np.concatenate([written.passed_envs, written.envs]),
            np.concatenate([written.passed_rows, written.rows]),
            np.concatenate([np.zeros(len(written.passed_rows)), new]),
        )

    def _repair_priorities(self) -> None:
        """After an interrupted add (see writing/writer.py): slots without a transition get
        priority 0 again and transitions left without one get the largest so far."""
        grid = (np.arange(self.num_envs)[None, :], np.arange(self.buffer_size)[:, None])
        priorities, valid = self._tree.get(*grid), self._ring.valid
        stale = ~valid & (priorities > 0)
        # With eps > 0 a stored transition's priority is never 0 but for this.
        missing = valid & (priorities <= 0) if self.eps > 0 else np.zeros_like(valid)
        rows, envs = np.nonzero(stale | missing)
        values = np.where(missing[rows, envs], self._max_priority**self.alpha, 0.0)
        self._tree.update(envs, rows, values)

    @locked
    def update_priorities(self, indices: Any, priorities: Any) -> None:
        """Set the priorities of the sampled transitions ``indices`` (as ``sample`` returned).

        ``priorities`` (numpy arrays, torch tensors or sequences; typically ``|TD error|``)
        has the shape of ``indices`` or that shape plus a trailing axis of 1; each must be
        finite and >= 0, and ``(priority + eps) ** alpha`` at most the largest float64 divided
        by ``buffer_size`` (so the sum tree's total stays finite). A transition's stored
        priority is ``(priority + eps) ** alpha``. For
        an index given twice the last value wins. A slot that holds no transition any more
        (overwritten since it was sampled) is skipped; one that holds a newer transition gets
        the priority, as in other PER implementations. Bad input raises (TypeError or
        ValueError) and changes nothing.

        Sequences (R2D2): with the ``indices`` of a ``sample_sequences`` batch of ``length``
        > 1, ``priorities`` may be the signed TD errors of its learned steps, shaped like
        ``indices`` plus ``(length,)``; each window's priority is then ``eta * max + (1 - eta)
        * mean`` of ``|td|`` over its learned steps that were real when sampled, and a window
        whose anchor was overwritten since it was sampled is skipped. (With ``length`` 1, give
        ``|td|`` shaped like ``indices``: the same priority.)
        """
        indices, priorities = _as_array(indices, "indices"), _as_array(priorities, "priorities")
        if indices.dtype.kind not in "iu":
            raise TypeError(f"indices: expected integers, got dtype {indices.dtype}")
        if priorities.dtype.kind not in "iuf":
            raise TypeError(f"priorities: expected real numbers, got dtype {priorities.dtype}")
        sequence = priorities.ndim == indices.ndim + 1 and priorities.shape[:-1] == indices.shape
        if sequence and priorities.shape[-1] > 1:
            self._update_sequence_priorities(indices, priorities.astype(np.float64))
            return
        if priorities.shape not in (indices.shape, (*indices.shape, 1)):
            raise ValueError(
                f"priorities: expected shape {indices.shape} (that of indices) or "
                f"{(*indices.shape, 1)}, got {priorities.shape}"
            )
        indices = indices.reshape(-1).astype(np.int64, copy=False)
        priorities = priorities.reshape(-1).astype(np.float64, copy=False)
        valid = self._ring.valid
        if self._priorities.try_update_slots(indices, priorities, valid, self.alpha, self.eps):
            return
        # Something is out of range: find what, and say so (the compiled call changed nothing).
        slots = self.buffer_size * self.num_envs
        outside = (indices < 0) | (indices >= slots)
        if outside.any():
            raise ValueError(
                f"indices: expected values in [0, {slots}), got {indices[outside][:5]}"
            )
        bad = ~np.isfinite(priorities) | (priorities < 0)
        if bad.any():
            raise ValueError(f"priorities: expected finite values >= 0, got {priorities[bad][:5]}")
        rows, envs = np.divmod(indices.astype(np.int64), self.num_envs)
        keep = self._ring.valid[rows, envs]
        self._priorities.set(rows, envs, priorities, keep, self.alpha, self.eps)

    def _update_sequence_priorities(self, indices: np.ndarray, td_errors: np.ndarray) -> None:
        """``update_priorities`` for sequence windows (see there)."""
        rows, envs, _ = self._window_slots(indices)
        memory, length = self._window_memory, td_errors.shape[-1]
        sampled = memory.length[rows, envs]
        if (sampled != length).any():
            raise ValueError(
                f"priorities: expected shape {(*indices.shape, int(sampled[0]))} (indices plus "
                f"the windows' length), got {td_errors.shape}"
            )
        td_errors = td_errors.reshape(-1, length)
        if not np.isfinite(td_errors).all():
            raise ValueError("priorities: expected finite TD errors, got inf or nan")
        priorities = sequence_priorities(td_errors, memory.learned[rows, envs], self.eta)
        keep = memory.intact(rows, envs, memory.sampled_at[rows, envs])
        self._priorities.set(rows, envs, priorities, keep, self.alpha, self.eps)


def _as_array(value: Any, name: str) -> np.ndarray:
    """``value`` as a numpy array; torch tensors are detached and copied to the cpu."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except (TypeError, ValueError) as error:
        raise TypeError(f"{name}: expected an array, got {type(value).__name__}") from error


def _check_non_negative(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.integer | np.floating):
        raise TypeError(f"{name}: expected a float >= 0, got {type(value).__name__}")
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(f"{name}: expected a finite float >= 0, got {value!r}")
    return float(value)
