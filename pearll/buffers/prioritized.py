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
from pearll.buffers.core.checks import check_batch_size
from pearll.buffers.replay import ReplayBuffer
from pearll.buffers.sampling.priorities import Priorities
from pearll.buffers.sampling.sum_tree import SumTree
from pearll.buffers.sampling.window_memory import sequence_priorities
from pearll.buffers.writing.writer import Written
from pearll.common.arguments import check_int
from pearll.common.enumerations import TrajectoryType, parse_trajectory_type
from pearll.common.type_aliases import PrioritizedTrajectories, Trajectories


class PrioritizedReplayBuffer(ReplayBuffer):
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
    probability ``P_e(i)``).
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

    @locked
    def sample(
        self, batch_size: int, flatten_env: bool = False, dtype: str | TrajectoryType = "numpy"
    ) -> PrioritizedTrajectories:
        """``batch_size`` transitions per sub-env, drawn in proportion to priority ** alpha.

        Shapes as ``ReplayBuffer.sample``; ``indices`` has the batch axes only and ``weights``
        a trailing axis of 1 (see :class:`PrioritizedTrajectories`). With ``flatten_env`` on a
        vector env: B transitions in all, drawn in proportion to priority ** alpha among every
        stored transition of every sub-env (see :meth:`_sample_flat`). Raises RuntimeError if a
        sub-env holds no transition or only transitions of priority zero (with
        ``flatten_env``: if the whole buffer does).
        """
        check_batch_size(batch_size)
        parse_trajectory_type(dtype)
        if flatten_env and self.env_info.is_vector:
            self._writer.recover_if_interrupted()
            return self._sample_flat(batch_size, dtype)
        rows, weights = self._draw_anchors(batch_size)
        gathered = self._gather(rows)
        gathered["indices"] = rows * self.num_envs + np.arange(self.num_envs)[:, None]
        gathered["weights"] = weights
        return self._package(gathered, flatten_env, dtype)

    def _draw_anchors(self, batch_size: int) -> tuple[np.ndarray, np.ndarray]:
        """``(E, B)`` rows drawn by priority (stratified) and their ``(E, B, 1)`` weights;
        the draws of ``sample`` and the anchors of ``sample_sequences``."""
        self._writer.recover_if_interrupted()
        self._ring.require_transitions()
        totals = self._tree.total()
        if (totals <= 0).any():
            raise RuntimeError(
                f"cannot sample: every priority of sub-envs {np.flatnonzero(totals <= 0).tolist()}"
                " is zero (eps=0 and zero priorities given); use eps > 0"
            )
        strata = (np.arange(batch_size) + self.rng.random((self.num_envs, batch_size))) / batch_size
        rows = self._tree.find(strata * totals[:, None])
        weights = self._weights(rows, np.arange(self.num_envs)[:, None], totals)
        self._samples_drawn += 1
        return rows, weights

    def _sample_flat(self, batch_size: int, dtype: str | TrajectoryType) -> PrioritizedTrajectories:
        """``batch_size`` transitions drawn by priority over the whole buffer, as one tree.

        The sub-envs' totals are laid end to end and cut into B equal strata, one draw in
        each; a draw falls in sub-env e's stretch with probability ``total_e / total`` and is
        then found in e's tree, so transition i has ``P(i) = p_i / total``. Weights are
        ``(N * P(i)) ** -beta`` (N every stored transition) over the largest such weight.
        """
        if not self._ring.count.any():
            raise RuntimeError("cannot sample: the buffer holds no transition; add some first")
        totals = self._tree.total()
        total = float(totals.sum())
        if total <= 0:
            raise RuntimeError(
                "cannot sample: every priority is zero (eps=0 and zero priorities given); "
                "use eps > 0"
            )
        targets = (np.arange(batch_size) + self.rng.random(batch_size)) / batch_size * total
        ends = np.cumsum(totals)
        envs = np.searchsorted(ends, targets, side="right")
        # Rounding can put a target at the very end: it belongs to the last positive stretch.
        envs = np.minimum(envs, np.flatnonzero(totals > 0)[-1])
        local = targets - (ends[envs] - totals[envs])
        rows = np.empty(batch_size, dtype=np.int64)
        for env in np.unique(envs):
            chosen = envs == env
            rows[chosen] = self._tree.find_in(int(env), local[chosen])
        gathered = self._gather(rows[:, None], envs)
        gathered["indices"] = (rows * self.num_envs + envs)[:, None]
        count = float(self._ring.count.sum())
        weights = (count * self._tree.get(envs, rows) / total) ** -self.beta
        smallest = float(self._tree.min().min())
        max_weight = (count * smallest / total) ** -self.beta
        gathered["weights"] = (weights / max_weight)[:, None, None].astype(np.float32)
        self._samples_drawn += 1
        return self._package(gathered, True, dtype)

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

    def _weights(self, rows: np.ndarray, envs: np.ndarray, totals: np.ndarray) -> np.ndarray:
        """``(E, B, 1)`` float32 ``(N_e * P_e(i)) ** -beta / max weight`` (see the class)."""
        beta, counts = self.beta, self._ring.count[:, None]
        weights = (counts * self._tree.get(envs, rows) / totals[:, None]) ** -beta
        # The largest weight belongs to each sub-env's smallest positive priority.
        max_weight = ((counts[:, 0] * self._tree.min() / totals) ** -beta).max()
        return (weights / max_weight)[..., None].astype(np.float32)

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
        self._set_priorities(rows, envs, priorities, self._ring.valid[rows, envs])

    def _set_priorities(
        self, rows: np.ndarray, envs: np.ndarray, priorities: np.ndarray, keep: np.ndarray
    ) -> None:
        """Store ``(priorities + eps) ** alpha`` where ``keep`` (see :meth:`Priorities.set`)."""
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
        self._set_priorities(rows, envs, priorities, keep)

    def _record(self, fields: dict[str, Any]) -> Trajectories:
        # last() and all() read in order, not by priority: plain records, without weights.
        if "indices" not in fields:
            return super()._record(fields)
        return PrioritizedTrajectories(**fields)


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
