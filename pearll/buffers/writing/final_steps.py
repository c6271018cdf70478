"""SAME_STEP episode ends on the step writer's path: the kernel declines a step that ended an
episode of a SAME_STEP vector env (NEEDS_FINAL_OBS, nothing written), and the step writer
writes it again with the true final observations from ``info`` (final_rows.py for array
observations, observation_leaves.with_final_observations for Dict and frame stacks)."""

from __future__ import annotations

from typing import Any

import numpy as np

from pearll.buffers.writing import step_kernel as kernel
from pearll.buffers.writing.final_rows import stage_final_rows
from pearll.buffers.writing.observation_leaves import with_final_observations


class FinalStepWrites:
    """The StepWriter's writes of SAME_STEP episode ends (a mixin: StepWriter provides the
    staged views, the control array, the kernel and ``_write``)."""

    _staged: tuple
    _obs_shape: tuple | None
    _obs_dtypes: frozenset
    _lead: tuple
    _control: np.ndarray
    _stage: np.ndarray

    # StepWriter's (annotations, not methods: a method here would shadow it in the MRO)
    _write_step: Any
    _write: Any

    def _write_with_final_rows(self, done: Any, trunc: Any, info: Any) -> int:
        """Array observations of a SAME_STEP step that ended an episode (the kernel declined
        it, writing nothing): the final observations from ``info`` staged over the ended
        sub-envs' next observations, and the kernel run again. Returns its result, or
        ACTION_OUT_OF_RANGE (any negative: left to the general path) if ``info`` is unusual."""
        staged_next, shape, dtypes = self._staged[1], self._obs_shape, self._obs_dtypes
        if not stage_final_rows(staged_next, shape[1:], dtypes, self._lead, done, trunc, info):
            return kernel.ACTION_OUT_OF_RANGE
        control = self._control
        control[kernel.SAME_STEP] = 0
        try:
            return self._write_step(control)
        finally:
            control[kernel.SAME_STEP] = 1

    def _write_final_observations(
        self, obs, action, reward, next_obs, done, trunc, extras, info
    ) -> bool:
        """A SAME_STEP step of Dict or frame-stacked observations that ended an episode (the
        kernel declined it, writing nothing): staged again with the final observations from
        ``info`` as next observations."""
        ended = np.logical_or(done, trunc).reshape(len(self._stage))
        true_next = with_final_observations(next_obs, info, ended)
        if true_next is None:
            return False
        control = self._control
        control[kernel.SAME_STEP] = 0
        try:
            return self._write(obs, action, reward, true_next, done, trunc, extras, None)
        finally:
            control[kernel.SAME_STEP] = 1
