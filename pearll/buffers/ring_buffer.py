"""RingBuffer: what ReplayBuffer and RolloutBuffer share (adding, bookkeeping, last, all, output).

The two differ only in where next observations live (:attr:`RingBuffer.spare_rows`) and in how
``sample`` chooses rows; subclasses set the first and implement the second.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar

import numpy as np

from pearll.buffers.base import BaseBuffer, locked
from pearll.buffers.core.checks import check_batch_size, check_episode_ends_allowed
from pearll.buffers.core.env_info import EnvInfo
from pearll.buffers.core.ring import Ring
from pearll.buffers.core.steps import StepBatch, steps_from_args
from pearll.buffers.reading.gather import Reader, concatenate_batches
from pearll.buffers.reading.nstep import NStepReader
from pearll.buffers.reading.output import convert, record_of, shape_env_axis
from pearll.buffers.storage.frame_options import FrameOptions
from pearll.buffers.storage.frames import FrameStackSpec
from pearll.buffers.writing.step_writer import StepWriter
from pearll.buffers.writing.writer import WriteObserver, Writer
from pearll.common.enumerations import TrajectoryType, parse_trajectory_type
from pearll.common.type_aliases import Observation, Trajectories


class RingBuffer(BaseBuffer):
    """A BaseBuffer whose sub-envs each write a ring of ``buffer_size`` rows.

    Subclasses say where next observations live with ``spare_rows`` (True: in the next row of
    ``observations``; False: in a ``next_observations`` array) and implement ``sample``.

    Threads: adds and reads may come from different threads. Each add (one step, or a whole
    batch) is written and committed holding ``self._lock``, and each read (``sample``,
    ``last``, ``all``) chooses its rows and gathers them holding it, so a read sees every add
    completely or not at all: never a half-written transition, and never a row overwritten
    between being chosen and being read. Adds from several threads to the same sub-env
    interleave whole calls, so each call should be a whole episode (or each thread should own a
    buffer) for episodes to stay contiguous. Subclasses decorate their own state-changing and
    sampling methods with :func:`~pearll.buffers.base.locked`.
    """

    spare_rows: ClassVar[bool]
    sized_parts = (Ring,)
    # n-step returns at read time (ReplayBuffer's constructor takes them; None: one step).
    n_step: int | None = None
    gamma: float | None = None

    def __init__(
        self,
        env: Any,
        buffer_size: int,
        device: Any = "auto",
        *,
        frame_stack: Any = None,
        frame_compression: str | None = None,
        **kwargs: Any,
    ) -> None:
        space = EnvInfo.of(env, kwargs.get("autoreset_mode")).observation_space
        options = FrameOptions.of(
            env, frame_stack, frame_compression, space, self.spare_rows, type(self).__name__
        )
        super().__init__(env, buffer_size, device, frame_options=options, **kwargs)
        self._record_settings(
            frame_stack=None if options.spec is None else options.spec.to_json(),
            frame_compression=None if options.codec is None else options.codec.name,
        )
        self._ring = Ring.empty(self.buffer_size, self.num_envs, self.spare_rows)
        self._parts.add("ring", self._ring)
        # Parts that keep state about stored rows (PER's priorities, HER's episodes) add
        # themselves here; both write paths tell them of every write.
        self._observers: list[WriteObserver] = []
        # And how each such part mends its state after an add that was interrupted (writer.py).
        self._repairs: list[Callable[[], None]] = []
        self._connect_parts()

    @property
    def frame_stack(self) -> FrameStackSpec | None:
        """How observations are frame-stacked (stored one frame per row), or None."""
        return self._frame_options.spec

    @property
    def frame_compression(self) -> str | None:
        """The codec compressing stored frames (``"lz4"``, ``"zstd"``), or None."""
        codec = self._frame_options.codec
        return None if codec is None else codec.name

    @locked
    def reset(self) -> None:
        super().reset()
        self._connect_parts()

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self._connect_parts()  # the writers hold the new arrays

    def __getstate__(self) -> dict[str, Any]:
        # The writers hold closures and addresses (not picklable); a copy makes its own.
        parts = ("_writer", "_fast_writer", "_reader", "_transition_reader")
        return {k: v for k, v in super().__getstate__().items() if k not in parts}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._connect_parts()

    def _connect_parts(self) -> None:
        """(Re)build the writers and the reader on the current storage, frames and ring: at
        construction, and whenever the storage is allocated anew (reset, load, a copy)."""
        store, ring = self._store, self._ring
        self._writer = Writer(
            self.env_info, store.packed, store.fields, store.frames, ring, self._observers,
            self._repairs,
        )  # fmt: skip
        self._reader = Reader(store.packed, store.fields, store.frames, self.spare_rows)
        # What sample, last and all read: n-step samples if the buffer was built for them
        # (sequences read single steps through self._reader).
        self._transition_reader = (
            self._reader
            if self.n_step is None
            else NStepReader(self._reader, ring.valid, self.n_step, self.gamma)
        )
        self._fast_writer = StepWriter.build(self._writer)

    @locked
    def __len__(self) -> int:
        """Transitions stored, over all sub-envs."""
        return int(self._ring.count.sum())

    @property
    @locked
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
        # The lock is taken here, not by @locked: on this hot path the decorator's extra call
        # costs more than the lock itself.
        with self._lock:
            fast = self._fast_writer
            if fast and fast.try_add(
                observation, action, reward, next_observation, done, truncated, extras, info
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
        *,
        episode_ends: np.ndarray | None = None,
        **extras: Any,
    ) -> None:
        """Store T consecutive steps at once, written vectorised.

        Each argument has a leading time axis: ``(T, ...)`` for a single env, ``(T, E, ...)``
        for a vector env; ``infos`` is a list of T vector-env info dicts (needed for SAME_STEP).
        The steps must follow one another as the env produced them. ``extras`` as in
        :meth:`add_trajectory`, with the same leading axes.

        ``episode_ends`` (bool, shaped like ``dones``; default None) marks steps that end their
        episode although neither terminated nor truncated, as a dataset's episode may (Minari
        allows it): the buffer ends the episode there as a truncation would (its final
        observation kept, the next step starting a new episode, never crossed by n-step
        returns) while the stored ``dones`` and ``truncateds`` stay as given. Only for buffers
        whose episodes the caller resets (a single env, or autoreset mode DISABLED): a vector
        env that resets itself does so only on a flag. Not for RolloutBuffer, whose advantages
        read episode ends from the stored flags.
        """
        if np.ndim(rewards) == 0:
            raise ValueError("rewards: expected a leading time axis (T, ...), got a scalar")
        num_steps = len(rewards)
        if truncateds is None:
            truncateds = np.zeros(np.shape(rewards), dtype=bool)
        if episode_ends is not None:
            check_episode_ends_allowed(
                self.spare_rows, self.env_info.autoreset_mode, type(self).__name__
            )
        self._add(
            steps_from_args(
                self.env_info, self._specs, observations, actions, rewards,
                next_observations, dones, truncateds, infos, num_steps=num_steps,
                extras=extras, episode_ends=episode_ends,
            )
        )  # fmt: skip

    @locked
    def _add(self, steps: StepBatch) -> None:
        """Write ``steps`` (the general path; see writing/step_writer.py for the hot one)."""
        self._writer.add(steps)

    # --- reading ----------------------------------------------------------------------------

    @abstractmethod
    def sample(
        self, batch_size: int, flatten_env: bool = False, dtype: str | TrajectoryType = "numpy"
    ) -> Trajectories:
        """A batch of ``batch_size`` transitions per sub-env."""

    @locked
    def last(
        self, batch_size: int, flatten_env: bool = False, dtype: str | TrajectoryType = "numpy"
    ) -> Trajectories:
        """Each sub-env's ``batch_size`` most recent transitions, oldest first.

        Shapes ``(B, ...)``, ``(E, B, ...)``, or ``(E * B, ...)`` with ``flatten_env``. Raises
        ValueError if some sub-env holds fewer.
        """
        check_batch_size(batch_size)
        parse_trajectory_type(dtype)
        return self._trajectories(self._ring.recent_rows(batch_size), flatten_env, dtype)

    @locked
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
        return self._package(concatenate_batches(parts), flatten_env=True, dtype=dtype)

    def _trajectories(
        self, rows: np.ndarray, flatten_env: bool, dtype: str | TrajectoryType
    ) -> Trajectories:
        """Gather ``(E, B)`` rows (row ``rows[e, i]`` of sub-env ``e``) into Trajectories."""
        return self._package(self._gather(rows), flatten_env, dtype)

    def _gather(
        self, rows: np.ndarray, envs: Any = None, last_rows: np.ndarray | None = None
    ) -> dict[str, Any]:
        """The fields of the transitions at ``rows`` (see :meth:`Reader.gather`; n-step
        samples with ``n_step``, see :class:`NStepReader`)."""
        return self._transition_reader.gather(rows, envs, last_rows)

    def _package(
        self, gathered: dict[str, Any], flatten_env: bool, dtype: str | TrajectoryType
    ) -> Trajectories:
        shaped = shape_env_axis(gathered, self.env_info.is_vector, flatten_env)
        return record_of(convert(shaped, dtype, self._device_spec))
