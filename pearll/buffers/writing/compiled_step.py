"""The step writer's use of the compiled staging (stage_kernel.py): a vector-env step whose
arrays have their fields' own dtypes, bool done and truncated flags (or ``truncated=False``)
and no extra fields (StepChecks._try_vector decides) is staged and written in one compiled
call, through the entry point compiled for the writer's fields at its first add."""

from __future__ import annotations

from typing import Any

import numpy as np

from pearll.buffers.writing import step_kernel as kernel
from pearll.buffers.writing.stage_kernel import entry_point
from pearll.buffers.writing.step_checks import FLOAT32

NEEDS_FINAL_OBS = kernel.NEEDS_FINAL_OBS


class CompiledStaging:
    """The compiled staging's part of StepWriter (a mixin: StepWriter provides the parts, the
    staged views, ``_write`` and the observers' report)."""

    _writer: Any
    _observers: Any
    _control: np.ndarray
    _staged: tuple
    _trunc_zero: bool
    _no_truncations: np.ndarray  # (E,) False: what truncated=False stages
    _stage_and_write: Any  # stage_kernel's function for these parts, or None
    _staging_f32: Any  # its entry points for float32 and float64 rewards, once compiled
    _staging_f64: Any
    _obs_dtype: np.dtype
    _obs_shape: tuple
    _action_dtype: np.dtype
    _action_shape: tuple

    # StepWriter's (annotations, not methods: a method here would shadow it in the MRO)
    _write: Any
    _start_report: Any
    _report: Any

    def _write_compiled(self, obs, action, reward, next_obs, done, trunc, info) -> bool:
        """``_write`` of a vector-env step whose arrays have their fields' own dtypes, no
        extras and bool (or ``False``) truncated flags (see StepChecks._try_vector): staged and
        written in one compiled call (stage_kernel.py)."""
        observers, writer = self._observers, self._writer
        if writer.unfinished:
            writer.recover_if_interrupted()
        if observers:
            self._start_report()
        entry = self._staging_f32 if reward.dtype is FLOAT32 else self._staging_f64
        if entry is None:
            entry = self._compile_staging(reward.dtype)
        flags = self._no_truncations if trunc is False else trunc
        try:
            result = entry(self._control, obs, next_obs, action, reward, done, flags)
        except TypeError:  # an array numba cannot take (see stage_kernel.entry_point): unrun
            return self._write(obs, action, reward, next_obs, done, trunc, {}, info)
        self._trunc_zero = trunc is False  # (what it staged)
        if result < 0:  # nothing was written
            writer.unfinished = False
            if result == NEEDS_FINAL_OBS:  # a SAME_STEP episode end: staged in Python, below
                return self._write(obs, action, reward, next_obs, done, trunc, {}, info)
            return False  # out of range: the general path raises
        if observers:
            self._report(result, done, trunc)
        return True

    def _compile_staging(self, reward_dtype: np.dtype) -> Any:
        """The compiled staging's entry point for this writer's fields and ``reward_dtype``."""
        observations = (self._obs_dtype, len(self._obs_shape))
        actions = (self._action_dtype, len(self._action_shape))
        entry = entry_point(self._stage_and_write, observations, actions, reward_dtype)
        if reward_dtype == np.float32:
            self._staging_f32 = entry
        else:
            self._staging_f64 = entry
        return entry
