"""The step writer's checks: one env step's arguments, by attribute compares only.

Each ``try`` method checks classes, shapes and dtypes (dtypes whose every value the field
holds exactly: stage.castable_dtypes) and hands the step to ``_write`` if every argument
fits, else returns False with nothing written: the general path then handles the step or
raises its detailed error. Every check is a few tens of nanoseconds (``x.__class__ is`` is
cheaper than ``type(x)``).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pearll.buffers.writing.stage import NUMERIC

ndarray = np.ndarray
SCALAR_NUMBERS = (float, int, np.floating, np.integer)
INTEGERS = (int, np.integer)
FLAGS = (bool, np.bool_)
BOOL_DTYPE = np.dtype(np.bool_)
BOOL = frozenset([BOOL_DTYPE])
FLOAT32 = np.dtype(np.float32)
FLOAT64 = np.dtype(np.float64)


class StepChecks:
    """The checks of :class:`~pearll.buffers.writing.step_writer.StepWriter`, which sets the
    shapes and dtypes they compare with and provides ``_write``."""

    _obs_shape: tuple | None
    _obs_dtypes: frozenset
    _obs_dtype: np.dtype | None  # the field's own dtype: most steps give it (``is`` first)
    _lead: tuple
    _action_shape: tuple
    _action_dtypes: frozenset
    _action_dtype: np.dtype
    _scalar_action: bool
    _extras: tuple
    _extra_names: set

    _stage_and_write: Any  # stage_kernel's compiled staging, or None
    _write_compiled: Any  # CompiledStaging's: the step staged and written by it

    # StepWriter's (annotations, not methods: a method here would shadow it in the MRO)
    _write: Any

    def _try_single(
        self, obs, action, reward, next_obs, done, trunc, extras, info=None
    ) -> bool:  # see StepWriter.try_add
        shape, dtypes = self._obs_shape, self._obs_dtypes
        return (
            obs.__class__ is ndarray and obs.shape == shape and obs.dtype in dtypes
            and next_obs.__class__ is ndarray and next_obs.shape == shape
            and next_obs.dtype in dtypes
            and self._single_rest_fits(action, reward, done, trunc, extras)
            and self._write(obs, action, reward, next_obs, done, trunc, extras, info)
        )  # fmt: skip

    def _try_single_dict(
        self, obs, action, reward, next_obs, done, trunc, extras, info=None
    ) -> bool:  # see StepWriter.try_add
        return self._single_rest_fits(action, reward, done, trunc, extras) and self._write(
            obs, action, reward, next_obs, done, trunc, extras, info
        )

    def _single_rest_fits(self, action, reward, done, trunc, extras) -> bool:
        return (
            ((action.__class__ is ndarray and action.shape == self._action_shape
              and action.dtype in self._action_dtypes)
             or (self._scalar_action and isinstance(action, INTEGERS)))
            and isinstance(reward, SCALAR_NUMBERS)
            and isinstance(done, FLAGS) and isinstance(trunc, FLAGS)
            and (self._extras_fit(extras) if self._extras else not extras)
        )  # fmt: skip

    def _try_vector(
        self, obs, action, reward, next_obs, done, trunc, extras, info=None
    ) -> bool:  # see StepWriter.try_add
        # Inlined rather than calling _vector_rest_fits: one method call fewer on this path.
        # Each dtype is compared by identity first (most steps give the field's own dtype, and
        # `is` costs half a set lookup), then by membership, so the same dtypes pass.
        shape, dtypes, lead, usual = self._obs_shape, self._obs_dtypes, self._lead, self._obs_dtype
        if (
            self._stage_and_write is not None  # the compiled staging: each field's own dtype
            and obs.__class__ is ndarray and obs.shape == shape and obs.dtype is usual
            and next_obs.__class__ is ndarray and next_obs.shape == shape
            and next_obs.dtype is usual
            and action.__class__ is ndarray and action.shape == self._action_shape
            and action.dtype is self._action_dtype
            and reward.__class__ is ndarray and reward.shape == lead
            and (reward.dtype is FLOAT32 or reward.dtype is FLOAT64)
            and done.__class__ is ndarray and done.shape == lead and done.dtype is BOOL_DTYPE
            and (trunc is False or (trunc.__class__ is ndarray and trunc.shape == lead
                                    and trunc.dtype is BOOL_DTYPE))
            and not extras
        ):  # fmt: skip
            return self._write_compiled(obs, action, reward, next_obs, done, trunc, info)
        return (
            obs.__class__ is ndarray and obs.shape == shape
            and ((d := obs.dtype) is usual or d in dtypes)
            and next_obs.__class__ is ndarray and next_obs.shape == shape
            and ((d := next_obs.dtype) is usual or d in dtypes)
            and action.__class__ is ndarray and action.shape == self._action_shape
            and ((d := action.dtype) is self._action_dtype or d in self._action_dtypes)
            and reward.__class__ is ndarray and reward.shape == lead
            and ((d := reward.dtype) is FLOAT32 or d in NUMERIC)
            and done.__class__ is ndarray and done.shape == lead
            and ((d := done.dtype) is BOOL_DTYPE or d in BOOL)
            and (trunc is False
                 or (trunc.__class__ is ndarray and trunc.shape == lead and trunc.dtype in BOOL)
                 or isinstance(trunc, FLAGS))
            and (self._extras_fit(extras) if self._extras else not extras)
            and self._write(obs, action, reward, next_obs, done, trunc, extras, info)
        )  # fmt: skip

    def _try_vector_dict(
        self, obs, action, reward, next_obs, done, trunc, extras, info=None
    ) -> bool:  # see StepWriter.try_add
        return self._vector_rest_fits(action, reward, done, trunc, extras) and self._write(
            obs, action, reward, next_obs, done, trunc, extras, info
        )

    def _vector_rest_fits(self, action, reward, done, trunc, extras) -> bool:
        lead = self._lead
        return (
            action.__class__ is ndarray and action.shape == self._action_shape
            and action.dtype in self._action_dtypes
            and reward.__class__ is ndarray and reward.shape == lead and reward.dtype in NUMERIC
            and done.__class__ is ndarray and done.shape == lead and done.dtype in BOOL
            and ((trunc.__class__ is ndarray and trunc.shape == lead and trunc.dtype in BOOL)
                 or isinstance(trunc, FLAGS))  # a scalar is broadcast, as the general path does
            and (self._extras_fit(extras) if self._extras else not extras)
        )  # fmt: skip

    def _extras_fit(self, extras: dict[str, Any]) -> bool:
        """Whether ``extras`` holds every declared extra field, each an array (or a numpy
        scalar) of its exact shape and a dtype the general path accepts."""
        if extras.keys() != self._extra_names:
            return False
        for name, _, shape, dtypes in self._extras:
            value = extras[name]
            if not (
                (value.__class__ is ndarray or isinstance(value, np.generic))
                and value.shape == shape and value.dtype in dtypes
            ):  # fmt: skip
                return False
        return True
