"""PrioritizedReplayBuffer's draws: ``sample``, the anchors of ``sample_sequences``, and the
pooled draws (``draw_slots``, ``pool_mass``) of the replay service.

A mixin of :class:`~pearll.buffers.prioritized.PrioritizedReplayBuffer`: it reads the buffer's
sum tree (``_tree``), ring and beta schedule; the rules are in that class's docstring. Per
sub-env draws use ``SumTree.find``; draws over the whole pool use
:func:`~pearll.buffers.sampling.stratified.stratified_pool_draw`, one function for
``sample(flatten_env=True)`` and for ``draw_slots``.
"""

from __future__ import annotations

import numpy as np

from pearll.buffers.base import locked
from pearll.buffers.core.checks import check_batch_size
from pearll.buffers.sampling.stratified import stratified_pool_draw
from pearll.common.enumerations import TrajectoryType, parse_trajectory_type
from pearll.common.type_aliases import PoolMass, PoolSlots, PrioritizedTrajectories


class PrioritizedSampling:
    """The sampling methods of PrioritizedReplayBuffer (see the module docstring)."""

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
        each (:func:`~pearll.buffers.sampling.stratified.stratified_pool_draw`), so transition
        i has ``P(i) = p_i / total``. Weights are ``(N * P(i)) ** -beta`` (N every stored
        transition) over the largest such weight.
        """
        envs, rows, masses = self._draw_pool(batch_size)
        gathered = self._gather(rows[:, None], envs)
        gathered["indices"] = (rows * self.num_envs + envs)[:, None]
        count, total = float(self._ring.count.sum()), float(self._tree.total().sum())
        weights = (count * masses / total) ** -self.beta
        smallest = float(self._tree.min().min())
        max_weight = (count * smallest / total) ** -self.beta
        gathered["weights"] = (weights / max_weight)[:, None, None].astype(np.float32)
        self._samples_drawn += 1
        return self._package(gathered, True, dtype)

    def _draw_pool(self, batch_size: int) -> PoolSlots:
        """``batch_size`` slots by priority over every sub-env (one uniform per stratum from
        the buffer's Generator) and their masses; raises RuntimeError before drawing anything
        if the buffer holds no transition or only zero priorities."""
        if not self._ring.count.any():
            raise RuntimeError("cannot sample: the buffer holds no transition; add some first")
        if float(self._tree.total().sum()) <= 0:
            raise RuntimeError(
                "cannot sample: every priority is zero (eps=0 and zero priorities given); "
                "use eps > 0"
            )
        envs, rows = stratified_pool_draw(self._tree, self.rng.random(batch_size))
        return PoolSlots(envs, rows, self._tree.get(envs, rows))

    def _weights(self, rows: np.ndarray, envs: np.ndarray, totals: np.ndarray) -> np.ndarray:
        """``(E, B, 1)`` float32 ``(N_e * P_e(i)) ** -beta / max weight`` (see the class)."""
        beta, counts = self.beta, self._ring.count[:, None]
        weights = (counts * self._tree.get(envs, rows) / totals[:, None]) ** -beta
        # The largest weight belongs to each sub-env's smallest positive priority.
        max_weight = ((counts[:, 0] * self._tree.min() / totals) ** -beta).max()
        return (weights / max_weight)[..., None].astype(np.float32)

    @locked
    def draw_slots(self, batch_size: int) -> PoolSlots:
        """``batch_size`` slots drawn over the whole pool by priority, stratified: the draw of
        ``sample(batch_size, flatten_env=True)`` (same random stream), without the read, the
        weights or a step of the beta schedule. ``masses`` are the stored
        ``(priority + eps) ** alpha``; each draw is slot i with probability
        ``masses_i / pool_mass().mass``. Raises RuntimeError if the buffer holds no transition
        or only zero priorities, drawing nothing.
        """
        check_batch_size(batch_size)
        self._writer.recover_if_interrupted()
        return self._draw_pool(batch_size)

    @locked
    def pool_mass(self) -> PoolMass:
        """Transitions stored, the sum of their stored priorities (``(priority + eps) **
        alpha``) over every sub-env, and the smallest positive one (inf if none)."""
        self._writer.recover_if_interrupted()
        return PoolMass(len(self), float(self._tree.total().sum()), float(self._tree.min().min()))
