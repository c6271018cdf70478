"""RingBuffer: what ReplayBuffer and RolloutBuffer share (adding, bookkeeping, last, all, output).

The two differ only in where next observations live (:attr:`RingBuffer.spare_rows`) and in how
``sample`` chooses rows; subclasses set the first and implement the second.
"""

from __future__ import annotations

import functools
import itertools
from abc import abstractmethod
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import numpy as np
from gymnasium.vector import AutoresetMode

from pearll.buffers.base import BaseBuffer, locked
from pearll.buffers.compressed_frames import CompressedFrameStore, resolve_codec
from pearll.buffers.env_info import EnvInfo, reset_steps
from pearll.buffers.frame_stack import FrameStackSpec, FrameStore, resolve_frame_stack
from pearll.buffers.output import convert, shape_env_axis
from pearll.buffers.ring import Ring, WritePlan
from pearll.buffers.spaces import FieldSpec
from pearll.buffers.step_writer import StepWriter
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

    Threads: adds and reads may come from different threads. Each add (one step, or a whole
    batch) is written and committed holding ``self._lock``, and each read (``sample``,
    ``last``, ``all``) chooses its rows and gathers them holding it, so a read sees every add
    completely or not at all: never a half-written transition, and never a row overwritten
    between being chosen and being read. Adds from several threads to the same sub-env
    interleave whole calls, so each call should be a whole episode (or each thread should own a
    buffer) for episodes to stay contiguous. Subclasses decorate their own state-changing and
    sampling methods with :func:`~pearll.buffers.base.locked`.
    """

    spare_rows: bool

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
        self._frame_spec = resolve_frame_stack(env, frame_stack, space)
        if self._frame_spec is not None and not self.spare_rows:
            raise ValueError(f"frame_stack: not supported by {type(self).__name__}")
        if self._frame_spec is None and frame_compression is not None:
            raise ValueError(
                f"frame_compression={frame_compression!r}: compresses the frames of frame-stacked "
                "observations, and this buffer has none (frame_stack=None, or no "
                "FrameStackObservation detected): declare frame_stack=k or drop the option"
            )
        self._frame_codec = resolve_codec(frame_compression)
        super().__init__(env, buffer_size, device, **kwargs)
        self._ring = Ring.empty(self.buffer_size, self.num_envs, self.spare_rows)
        self._fast_writer = self._make_fast_writer()

    @property
    def frame_stack(self) -> FrameStackSpec | None:
        """How observations are frame-stacked (stored one frame per row), or None."""
        return self._frame_spec

    @property
    def frame_compression(self) -> str | None:
        """The codec compressing stored frames (``"lz4"``, ``"zstd"``), or None."""
        return None if self._frame_codec is None else self._frame_codec.name

    def _field_specs(self) -> dict[str, Any]:
        specs = super()._field_specs()
        if not self.spare_rows:
            specs["next_observations"] = specs["observations"]
        return specs

    def _stored_specs(self) -> dict[str, Any]:
        if self._frame_spec is None:
            return self._specs
        # Frames live in the FrameStore; a row keeps how deep its stack reaches back.
        stored = {name: spec for name, spec in self._specs.items() if name != "observations"}
        return stored | {"frame_depth": FieldSpec((), np.dtype(np.uint8))}

    def _mirror_first_row(self) -> bool:
        return self.spare_rows and self._frame_spec is None

    def _bulk_bytes(self) -> int:
        # Compressed frames stay in memory whatever the storage (see compressed_frames.py).
        placed = self._frame_codec is None
        return super()._bulk_bytes() + (self._frame_bytes() if placed else 0)

    def _frame_bytes(self) -> int:
        if self._frame_spec is None:
            return 0
        space = self.env_info.observation_space
        store = FrameStore if self._frame_codec is None else CompressedFrameStore
        return store.required_bytes(space, self.buffer_size, self.num_envs)

    def _required_bytes(self) -> int:
        valid_mask = self.buffer_size * self.num_envs
        return super()._required_bytes() + valid_mask + self._frame_bytes()

    def _allocate(self, packed: np.ndarray | None = None) -> dict[str, Any]:
        self._frames = None
        spec, space = self._frame_spec, self.env_info.observation_space
        if spec is not None and self._frame_codec is not None:
            codec = self._frame_codec
            self._frames = CompressedFrameStore(spec, space, self.buffer_size, self.num_envs, codec)
        elif spec is not None:
            zeros = functools.partial(self._placement.zeros, "frames")
            self._frames = FrameStore(spec, space, self.buffer_size, self.num_envs, zeros)
        return super()._allocate(packed)

    def _views(self) -> dict[str, Any]:
        views = super()._views()
        if self._frames is not None:
            views["observations"] = self._frames.view
        return views

    @property
    def nbytes(self) -> int:
        frames = self._frames.nbytes if self._frames is not None else 0
        return super().nbytes + self._ring.valid.nbytes + frames

    @locked
    def reset(self) -> None:
        super().reset()
        self._ring = Ring.empty(self.buffer_size, self.num_envs, self.spare_rows)
        self._fast_writer = self._make_fast_writer()

    def __getstate__(self) -> dict[str, Any]:
        # The fast writer holds closures (not picklable); a copy makes its own.
        return {k: v for k, v in super().__getstate__().items() if k != "_fast_writer"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        super().__setstate__(state)
        self._fast_writer = self._make_fast_writer()

    def _make_fast_writer(self) -> StepWriter | None:
        return StepWriter(self) if StepWriter.applies_to(self) else None

    @locked
    def __len__(self) -> int:
        """Transitions stored, over all sub-envs."""
        return int(self._ring.count.sum())

    @property
    @locked
    def counts(self) -> np.ndarray:
        """``(E,)`` transitions stored per sub-env."""
        return self._ring.count.copy()

    def _config(self) -> dict[str, Any]:
        spec, codec = self._frame_spec, self._frame_codec
        return {
            **super()._config(),
            "frame_stack": None if spec is None else spec.to_json(),
            "frame_compression": None if codec is None else codec.name,
        }

    def _state(self) -> dict[str, Any]:
        ring = {f.name: getattr(self._ring, f.name) for f in fields(Ring)}
        state = {**super()._state(), "ring": ring}
        if self._frames is not None:
            state["frames"] = self._frames.state()
        return state

    def _set_state(self, state: dict[str, Any]) -> None:
        super()._set_state(state)
        self._ring = Ring(**state["ring"])
        if self._frames is not None:
            self._frames.set_state(state["frames"])
            self._storage = self._views()
        self._fast_writer = self._make_fast_writer()  # it holds the arrays and the ring

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
                observation, action, reward, next_observation, done, truncated, extras
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
            self._check_episode_ends_allowed()
        self._add(
            steps_from_args(
                self.env_info, self._specs, observations, actions, rewards,
                next_observations, dones, truncateds, infos, num_steps=num_steps,
                extras=extras, episode_ends=episode_ends,
            )
        )  # fmt: skip

    def _check_episode_ends_allowed(self) -> None:
        if not self.spare_rows:
            raise ValueError(
                f"episode_ends: not supported by {type(self).__name__} (its advantages read "
                "episode ends from the stored terminated/truncated flags); set truncateds instead"
            )
        if self.env_info.autoreset_mode is not AutoresetMode.DISABLED:
            raise ValueError(
                "episode_ends: only for buffers whose episodes the caller resets (a single env "
                "or autoreset mode DISABLED), got a vector env in autoreset mode "
                f"{self.env_info.autoreset_mode.name}, which resets only on terminated/truncated"
            )

    @locked
    def _add(self, steps: StepBatch) -> None:
        """Write ``steps`` (the general path; see step_writer.py for the hot one)."""
        if self._frames is not None and len(steps) > self._frames.max_steps_per_write:
            # Frame stacks stay checkable only if a write never wraps onto its own rows.
            chunk = self._frames.max_steps_per_write
            for start in range(0, len(steps), chunk):
                self._add(steps.slice(start, start + chunk))
            return
        ended = steps.ended
        keep = ~reset_steps(ended, self._ring.prev_ended, self.env_info.autoreset_mode)
        plan = self._ring.plan(keep, ended)
        self._write(plan, steps)
        passed_rows, passed_envs = self._ring.commit(plan)
        if self._frames is not None:
            broken_rows, broken_envs = self._break_stacks(np.flatnonzero(plan.advance))
            passed_rows = np.concatenate([passed_rows, broken_rows])
            passed_envs = np.concatenate([passed_envs, broken_envs])
        self._on_written(plan.step_row, plan.step_env, passed_rows, passed_envs)

    def _break_stacks(self, envs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Drop the transitions whose frame stacks reach rows the write just committed (by the
        sub-envs ``envs``, those that moved) overwrote; returns their ``(rows, envs)``."""
        ring = self._ring
        # The last row written: the pending next observation, or an ended episode's final one.
        newest = (ring.pos[envs] - ring.prev_ended[envs]) % self.buffer_size
        rows, cols = self._frames.broken_rows(
            self._storage["frame_depth"], ring.valid, newest, envs
        )
        ring.invalidate(rows, cols)
        return rows, cols

    def _on_written(
        self, rows: np.ndarray, envs: np.ndarray, passed_rows: np.ndarray, passed_envs: np.ndarray
    ) -> None:
        """Called after every add, by both write paths: a hook for subclasses' own state.

        ``(rows[i], envs[i])`` now hold new transitions; the ``(passed_rows, passed_envs)``
        slots were overwritten or made pending, and hold no transition unless among the first.
        """

    def _write(self, plan: WritePlan, steps: StepBatch) -> None:
        fancy = ((plan.step_t, plan.step_env), (plan.step_row, plan.step_env))
        # Runs of consecutive rows (whole episodes of a batch) copy faster as slices.
        parts = (_slice_runs(plan) if self._frames is None else None) or [fancy]
        observations, next_observations = steps.observations, steps.next_observations
        if self._frames is not None:
            observations, next_observations = observations[:, :, -1], next_observations[:, :, -1]
            depth, next_depth = self._frames.depths(plan.keep, plan.ended)
            self._storage["frame_depth"][fancy[1]] = depth[fancy[0]]
            target, source = (plan.next_row, plan.next_env), (plan.next_t, plan.next_env)
            self._storage["frame_depth"][target] = next_depth[source]
        for at_steps, rows in parts:
            for name in STEP_FIELDS:
                self._storage[name][rows] = getattr(steps, name)[at_steps]
            _scatter(self._storage["observations"], rows, observations, at_steps)
            _scatter(self._storage["extras"], rows, steps.extras, at_steps)
            if not self.spare_rows:
                _scatter(self._storage["next_observations"], rows, next_observations, at_steps)
        if self.spare_rows:
            target, source = (plan.next_row, plan.next_env), (plan.next_t, plan.next_env)
            _scatter(self._storage["observations"], target, next_observations, source)
            if not (plan.step_row.all() and plan.next_row.all()):
                self._packed.sync_mirror()

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
        _check_batch_size(batch_size)
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
        if self._frames is not None:
            return self._gather_stacks(rows, env_column(self.num_envs, envs), last_rows)
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

    def _gather_stacks(
        self, rows: np.ndarray, envs: np.ndarray, last_rows: np.ndarray | None
    ) -> dict[str, Any]:
        """``_gather`` for frame-stacked observations: stacks rebuilt from stored frames."""
        last = rows if last_rows is None else last_rows
        gather = self._packed.gather
        fields = gather(rows, envs, ("actions", "rewards", "extras", "frame_depth"), False)
        fields |= gather(last, envs, ("dones",), False)
        following = (last + 1) % self.buffer_size
        next_depth = self._storage["frame_depth"][following, envs]
        fields["observations"], fields["next_observations"] = self._frames.stack_pairs(
            rows, following, envs, fields.pop("frame_depth"), next_depth
        )
        return fields

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


# Below this many steps per run on average, one fancy-index scatter beats a slice copy per run.
MIN_RUN_STEPS = 32


def _slice_runs(plan: WritePlan) -> list[tuple[tuple, tuple]] | None:
    """The plan's writes as ``(at_steps, rows)`` slice pairs, one per run of consecutive steps
    going to consecutive rows of one sub-env (each whole episode of a single-env batch is
    one), or None when the runs are too short for slices to pay.

    Basic-index copies of long runs cost a fraction of the fancy-index scatter, which was most
    of the time of adding whole episodes (benchmarks/bench_minari.py).
    """
    rows, steps, envs = plan.step_row, plan.step_t, plan.step_env
    n = len(rows)
    if n < MIN_RUN_STEPS:
        return None
    breaks = np.flatnonzero((np.diff(rows) != 1) | (np.diff(steps) != 1) | (np.diff(envs) != 0))
    if (len(breaks) + 1) * MIN_RUN_STEPS > n:
        return None
    bounds = [0, *(breaks + 1).tolist(), n]
    runs = []
    for start, stop in itertools.pairwise(bounds):
        env, row, step = int(envs[start]), int(rows[start]), int(steps[start])
        length = stop - start
        runs.append(((slice(step, step + length), env), (slice(row, row + length), env)))
    return runs


def _scatter(storage: Any, rows: tuple, values: Any, at: tuple) -> None:
    """``storage[rows] = values[at]`` leaf by leaf."""
    tree_map(lambda s, v: s.__setitem__(rows, v[at]), storage, values)


def _check_batch_size(batch_size: Any) -> None:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int | np.integer):
        raise TypeError(f"batch_size: expected a positive int, got {type(batch_size).__name__}")
    if batch_size <= 0:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size}")
