"""RingBuffer: what ReplayBuffer and RolloutBuffer share (adding, bookkeeping, last, all, output).

The two differ only in where next observations live (:attr:`RingBuffer.spare_rows`) and in how
``sample`` chooses rows; subclasses set the first and implement the second.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from pearll.buffers.base import BaseBuffer
from pearll.buffers.env_info import reset_steps
from pearll.buffers.output import convert, shape_env_axis
from pearll.buffers.ring import Ring, WritePlan
from pearll.buffers.single_step import SingleStepWriter
from pearll.buffers.steps import StepBatch, steps_from_args
from pearll.buffers.tree import tree_map
from pearll.common.enumerations import TrajectoryType, parse_trajectory_type
from pearll.common.type_aliases import DictTrajectories, Observation, Trajectories

STEP_FIELDS = ("actions", "rewards", "dones", "truncateds")
# The stored fields a transition is read from (next observations aside).
READ_FIELDS = ("observations", "actions", "rewards", "dones", "extras")


class RingBuffer(BaseBuffer):
    """A BaseBuffer whose sub-envs each write a ring of ``buffer_size`` rows.

    Subclasses say where next observations live with ``spare_rows`` (True: in the next row of
    ``observations``; False: in a ``next_observations`` array) and implement ``sample``.
    """

    spare_rows: bool

    def __init__(self, env: Any, buffer_size: int, device: Any = "auto", **kwargs: Any) -> None:
        super().__init__(env, buffer_size, device, **kwargs)
        self._ring = Ring.empty(self.buffer_size, self.num_envs, self.spare_rows)
        self._single_step = self._single_step_writer()

    def _field_specs(self) -> dict[str, Any]:
        specs = super()._field_specs()
        if not self.spare_rows:
            specs["next_observations"] = specs["observations"]
        return specs

    def _mirror_first_row(self) -> bool:
        return self.spare_rows

    def _required_bytes(self) -> int:
        valid_mask = self.buffer_size * self.num_envs
        return super()._required_bytes() + valid_mask

    @property
    def nbytes(self) -> int:
        return super().nbytes + self._ring.valid.nbytes

    def reset(self) -> None:
        super().reset()
        self._ring = Ring.empty(self.buffer_size, self.num_envs, self.spare_rows)
        self._single_step = self._single_step_writer()

    def _single_step_writer(self) -> SingleStepWriter | None:
        return SingleStepWriter(self) if SingleStepWriter.applies_to(self) else None

    def __len__(self) -> int:
        """Transitions stored, over all sub-envs."""
        return int(self._ring.count.sum())

    @property
    def counts(self) -> np.ndarray:
        """``(E,)`` transitions stored per sub-env."""
        return self._ring.count.copy()

    # --- adding -----------------------------------------------------------------------------

    def add_trajectory(
        self,
        observation: Observation,
        action: np.ndarray | int,
        reward: float | np.ndarray,
        next_observation: Observation,
        done: bool | np.ndarray,
        truncated: bool | np.ndarray = False,
        info: dict | None = None,
        **extras: Any,
    ) -> None:
        """Store one step: ``(obs, action, reward, next_obs, terminated, truncated)``.

        For a vector env every argument has the env axis first and ``info`` is the vector env's
        info dict (SAME_STEP envs carry the true final observations there). ``done`` means
        terminated: the TD target masks it. ``truncated`` ends the episode without that mask.
        NEXT_STEP reset steps are recognised and dropped, so pass every step as the env gave it.
        ``extras`` are the values of the declared ``extra_fields`` (all of them), shaped like
        ``reward`` plus the field's shape.
        """
        fast = self._single_step
        if (
            fast
            and not extras
            and fast.try_add(observation, action, reward, next_observation, done, truncated)
        ):
            return
        if self.env_info.is_vector and np.ndim(truncated) == 0:
            truncated = np.full(self.num_envs, bool(truncated))
        self._add(
            steps_from_args(
                self.env_info, self._specs, observation, action, reward,
                next_observation, done, truncated, info, num_steps=None, extras=extras,
            )
        )  # fmt: skip

    def add_batch_trajectories(
        self,
        observations: Observation,
        actions: np.ndarray,
        rewards: np.ndarray,
        next_observations: Observation,
        dones: np.ndarray,
        truncateds: np.ndarray | None = None,
        infos: Sequence[dict | None] | None = None,
        **extras: Any,
    ) -> None:
        """Store T consecutive steps at once, written vectorised.

        Each argument has a leading time axis: ``(T, ...)`` for a single env, ``(T, E, ...)``
        for a vector env; ``infos`` is a list of T vector-env info dicts (needed for SAME_STEP).
        The steps must follow one another as the env produced them. ``extras`` as in
        :meth:`add_trajectory`, with the same leading axes.
        """
        if np.ndim(rewards) == 0:
            raise ValueError("rewards: expected a leading time axis (T, ...), got a scalar")
        num_steps = len(rewards)
        if truncateds is None:
            truncateds = np.zeros(np.shape(rewards), dtype=bool)
        self._add(
            steps_from_args(
                self.env_info, self._specs, observations, actions, rewards,
                next_observations, dones, truncateds, infos, num_steps=num_steps,
                extras=extras,
            )
        )  # fmt: skip

    def _add(self, steps: StepBatch) -> None:
        """Write ``steps`` (the general path; see single_step.py for the hot one)."""
        ended = steps.ended
        keep = ~reset_steps(ended, self._ring.prev_ended, self.env_info.autoreset_mode)
        plan = self._ring.plan(keep, ended)
        self._write(plan, steps)
        passed_rows, passed_envs = self._ring.commit(plan)
        self._on_written(plan.step_row, plan.step_env, passed_rows, passed_envs)

    def _on_written(
        self, rows: np.ndarray, envs: np.ndarray, passed_rows: np.ndarray, passed_envs: np.ndarray
    ) -> None:
        """Called after every add, by both write paths: a hook for subclasses' own state.

        ``(rows[i], envs[i])`` now hold new transitions; the ``(passed_rows, passed_envs)``
        slots were overwritten or made pending, and hold no transition unless among the first.
        """

    def _write(self, plan: WritePlan, steps: StepBatch) -> None:
        at_steps = (plan.step_t, plan.step_env)
        rows = (plan.step_row, plan.step_env)
        for name in STEP_FIELDS:
            self._storage[name][rows] = getattr(steps, name)[at_steps]
        _scatter(self._storage["observations"], rows, steps.observations, at_steps)
        _scatter(self._storage["extras"], rows, steps.extras, at_steps)
        if self.spare_rows:
            target, source = (plan.next_row, plan.next_env), (plan.next_t, plan.next_env)
            _scatter(self._storage["observations"], target, steps.next_observations, source)
            if not (plan.step_row.all() and plan.next_row.all()):
                self._packed.sync_mirror()
        else:
            _scatter(self._storage["next_observations"], rows, steps.next_observations, at_steps)

    # --- reading ----------------------------------------------------------------------------

    @abstractmethod
    def sample(
        self, batch_size: int, flatten_env: bool = False, dtype: str | TrajectoryType = "numpy"
    ) -> Trajectories:
        """A batch of ``batch_size`` transitions per sub-env."""

    def last(
        self, batch_size: int, flatten_env: bool = False, dtype: str | TrajectoryType = "numpy"
    ) -> Trajectories:
        """Each sub-env's ``batch_size`` most recent transitions, oldest first.

        Shapes ``(B, ...)``, ``(E, B, ...)``, or ``(E * B, ...)`` with ``flatten_env``. Raises
        ValueError if some sub-env holds fewer.
        """
        _check_batch_size(batch_size)
        parse_trajectory_type(dtype)
        return self._trajectories(self._ring.recent_rows(batch_size), flatten_env, dtype)

    def all(self, flatten_env: bool = False, dtype: str | TrajectoryType = "numpy") -> Trajectories:
        """Every stored transition, oldest first.

        With the env axis, each sub-env's m most recent (m the smallest count, so the batch is
        rectangular); with ``flatten_env=True``, every stored transition, sub-env by sub-env.
        """
        parse_trajectory_type(dtype)
        if not len(self):
            raise RuntimeError("the buffer holds no transition; add some first")
        if not (self.env_info.is_vector and flatten_env):
            smallest = int(self._ring.count.min())
            return self._trajectories(self._ring.recent_rows(smallest), flatten_env, dtype)
        filled = np.flatnonzero(self._ring.count)
        parts = [self._gather(self._ring.ordered_rows(e)[None], [e]) for e in filled]
        merged = {
            name: tree_map(
                lambda *arrays: np.concatenate(arrays, axis=1), *(p[name] for p in parts)
            )
            for name in parts[0]
        }
        return self._package(merged, flatten_env=True, dtype=dtype)

    def _trajectories(
        self, rows: np.ndarray, flatten_env: bool, dtype: str | TrajectoryType
    ) -> Trajectories:
        """Gather ``(E, B)`` rows (row ``rows[e, i]`` of sub-env ``e``) into Trajectories."""
        return self._package(self._gather(rows), flatten_env, dtype)

    def _gather(
        self, rows: np.ndarray, envs: Any = None, last_rows: np.ndarray | None = None
    ) -> dict[str, Any]:
        """The fields of the transitions starting at ``rows`` (E, B) of sub-envs ``envs`` (E,).

        ``last_rows`` (E, B), for samples spanning several steps (n-step returns), is the row of
        each sample's last step: ``next_observations`` and ``dones`` are read there. It
        defaults to ``rows``.
        """
        envs = env_column(self.num_envs, envs) if self.num_envs > 1 else None
        gather, spare = self._packed.gather, self.spare_rows
        if last_rows is None:
            names = READ_FIELDS if spare else (*READ_FIELDS, "next_observations")
            return gather(rows, envs, names, next_observations=spare)
        first = gather(rows, envs, ("observations", "actions", "rewards", "extras"), False)
        last = gather(
            last_rows, envs, ("dones",) if spare else ("dones", "next_observations"), spare
        )
        return first | last

    def _package(
        self, gathered: dict[str, Any], flatten_env: bool, dtype: str | TrajectoryType
    ) -> Trajectories:
        shaped = shape_env_axis(gathered, self.env_info.is_vector, flatten_env)
        return self._record(convert(shaped, dtype, self._device_spec))

    def _record(self, fields: dict[str, Any]) -> Trajectories:
        """The record type of this buffer's output, filled with ``fields``."""
        record = DictTrajectories if isinstance(fields["observations"], dict) else Trajectories
        return record(**fields)


def env_column(num_envs: int, envs: Any = None) -> np.ndarray:
    """``(E, 1)`` sub-env indices (all sub-envs by default) to index ``(row, env)`` arrays."""
    return np.arange(num_envs)[:, None] if envs is None else np.asarray(envs)[:, None]


def _scatter(storage: Any, rows: tuple, values: Any, at: tuple) -> None:
    """``storage[rows] = values[at]`` leaf by leaf."""
    tree_map(lambda s, v: s.__setitem__(rows, v[at]), storage, values)


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"batch_size: expected a positive int, got {type(batch_size).__name__}")
    if batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
