"""Sequence sampling for the replay buffers: ``sample_sequences`` and ``update_extras``.

A mixin of :class:`~pearll.buffers.replay.ReplayBuffer` (so of PrioritizedReplayBuffer too)
that wires the parts: anchors from ``_draw_anchors`` (uniform here, by priority in
PrioritizedReplayBuffer), windows from :mod:`pearll.buffers.sampling.sequences`, their memory
in :mod:`pearll.buffers.sampling.window_memory`, the read in
:mod:`pearll.buffers.reading.sequences`, write-back in
:mod:`pearll.buffers.writing.window_extras`. The rules: docs/sequences.md.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from pearll.buffers.base import locked
from pearll.buffers.core.checks import check_batch_size
from pearll.buffers.pool_sampling import stored_slots
from pearll.buffers.reading.output import convert, shape_env_axis
from pearll.buffers.reading.sequences import gather_windows
from pearll.buffers.sampling.sequences import Windows, check_window_args, window_rows
from pearll.buffers.sampling.uniform import draw_rows
from pearll.buffers.sampling.window_memory import WindowMemory
from pearll.buffers.writing.window_extras import write_window_extras
from pearll.common.enumerations import TrajectoryType, parse_trajectory_type
from pearll.common.tree import tree_map
from pearll.common.type_aliases import SequenceTrajectories


class SampledWindows:
    """A part: the :class:`WindowMemory` of a buffer, made on the first ``sample_sequences``
    (a buffer that never samples sequences pays nothing on its adds), forgotten by ``reset``
    and ``load`` (the rows it describes are gone), and not saved (docs/sequences.md)."""

    def __init__(self, capacity: int, num_envs: int, observers: list[Any]) -> None:
        self._shape, self._observers = (capacity, num_envs), observers
        self.made: WindowMemory | None = None

    def memory(self) -> WindowMemory:
        """The memory, made now if it was not yet (it then observes every write)."""
        if self.made is None:
            self.made = WindowMemory(*self._shape)
            self._observers.append(self.made.written)
        return self.made

    @property
    def nbytes(self) -> int:
        return 0 if self.made is None else self.made.nbytes

    def reset(self) -> None:
        if self.made is not None:
            self._observers.remove(self.made.written)
            self.made = None

    def state(self) -> dict[str, Any]:
        return {}

    def set_state(self, state: dict[str, Any]) -> None:
        self.reset()


class SequenceSampling:
    """``sample_sequences`` and ``update_extras`` for a RingBuffer in the ReplayBuffer layout
    (a mixin before RingBuffer: it adds the part that remembers the windows handed out)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sampled_windows = SampledWindows(self.buffer_size, self.num_envs, self._observers)
        self._parts.add("windows", self._sampled_windows)

    @locked
    def sample_sequences(
        self,
        batch_size: int,
        length: int,
        *,
        burn_in: int = 0,
        boundary: str = "pad",
        flatten_env: bool = False,
        dtype: str | TrajectoryType = "numpy",
    ) -> SequenceTrajectories:
        """``batch_size`` windows of ``burn_in + length`` consecutive steps per sub-env.

        Each window's anchor (its first learned step, at index ``burn_in``) is drawn uniformly
        over the stored transitions of its sub-env, with replacement. The burn-in is the
        ``burn_in`` steps before the anchor in its episode (fewer at an episode start: the
        missing ones are padding); the learned part is the ``length`` steps from the anchor on.
        ``boundary="pad"`` (R2D2): a window never leaves its episode, past its last step is
        padding, and that step's ``next_observations`` is the episode's true final observation
        (truncated episodes too). ``boundary="cross"`` (DreamerV3): the learned part runs on
        into the sub-env's next stored episode (``is_first`` marks its start), up to the newest
        stored step. Padding is zeros, ``mask`` 0. Windows never mix sub-envs and never read an
        overwritten row. See :class:`~pearll.common.type_aliases.SequenceTrajectories` for
        the shapes and docs/sequences.md for the rules. ``rewards`` are one-step rewards also
        for buffers built with ``n_step``.

        Raises TypeError / ValueError for bad arguments and RuntimeError if a sub-env holds no
        transition, before anything is drawn (the buffer's random stream is left as it was).
        """
        check_batch_size(batch_size)
        check_window_args(length, burn_in, boundary)
        parse_trajectory_type(dtype)
        anchors, weights = self._draw_anchors(batch_size)
        windows = self._windows_at(anchors, length, burn_in, boundary)
        self._remember(anchors, windows, burn_in, length, boundary)
        return self._package_windows(windows, anchors, burn_in, flatten_env, dtype, weights)

    @locked
    def read_windows(
        self,
        envs: Any,
        rows: Any,
        length: int,
        *,
        burn_in: int = 0,
        boundary: str = "pad",
        dtype: str | TrajectoryType = "numpy",
    ) -> SequenceTrajectories:
        """The windows anchored at the slots ``(envs[i], rows[i])`` (as ``draw_slots`` gave
        them), exactly as ``sample_sequences`` builds a window at such an anchor.

        Every array has shape ``(k, T, ...)`` (``T = burn_in + length``; ``mask``,
        ``learn_mask``, ``is_first`` ``(k, T)``), ``indices`` ``(k,)`` int64 the anchors'
        slots (``row * num_envs + env``); ``weights`` is None (the caller weighs its draws).
        The windows are remembered as ``sample_sequences``' are, so ``update_priorities`` and
        ``update_extras`` take their ``indices``. Raises TypeError / ValueError, reading and
        remembering nothing, for bad window arguments or slots that hold no transition.
        """
        check_window_args(length, burn_in, boundary)
        parse_trajectory_type(dtype)
        envs, rows = stored_slots(self, envs, rows)
        windows = self._windows_of_slots(envs, rows, length, burn_in, boundary)
        anchors = rows[:, None]
        self._remember(anchors, windows, burn_in, length, boundary, envs)
        fields = gather_windows(
            self._reader, windows.rows, windows.is_first, anchors, int(burn_in), self.num_envs,
            envs,
        )  # fmt: skip
        fields = tree_map(lambda array: array[:, 0], fields)
        return SequenceTrajectories(**convert(fields, dtype, self._device_spec))

    @property
    def _window_memory(self) -> WindowMemory | None:
        """The memory of the windows handed out, None before the first ``sample_sequences``."""
        return self._sampled_windows.made

    def _remember(
        self,
        anchors: np.ndarray,
        windows: Windows,
        burn_in: int,
        length: int,
        boundary: str,
        envs: np.ndarray | None = None,
    ) -> None:
        memory = self._sampled_windows.memory()
        memory.remember(anchors, windows, burn_in, length, boundary == "cross", envs)

    def _draw_anchors(self, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``(E, B)`` anchor rows drawn uniformly over each sub-env's transitions; no weights."""
        return draw_rows(self.rng, self._ring, batch_size), None

    @locked
    def update_extras(self, indices: Any, name: str, values: Any) -> None:
        """Write ``values`` into the declared extra field ``name`` at the steps of the windows
        ``indices`` as they were sampled (DreamerV3-style stored state write-back).

        ``indices``: a ``sample_sequences`` batch's ``indices``; ``values`` shaped like its
        ``extras[name]`` (batch axes + ``(T,)`` + the field's shape; numpy, torch or sequences).
        Only the window's real steps are written (padding is ignored), and only those that
        still hold what was sampled: a window whose anchor was overwritten since is skipped
        whole, and so is any burn-in step overwritten since. Raises KeyError for an undeclared
        field, ValueError for indices that are no sampled window's or values of the wrong
        shape, changing nothing.
        """
        memory = self._window_memory
        if name not in self._extra_specs:
            raise KeyError(f"extra field {name!r}: declared ones are {list(self._extra_specs)}")
        rows, envs, indices = self._window_slots(indices)
        values = _to_numpy(values)
        spec = self._extra_specs[name]
        steps = np.unique(memory.burn_in[rows, envs] + memory.length[rows, envs])
        expected = (*indices.shape, int(steps[0]), *spec.shape)
        if len(steps) != 1 or values.shape != expected:
            raise ValueError(f"values: expected shape {expected} (that of extras[{name!r}] of "
                             f"the windows sampled at indices), got {values.shape}")  # fmt: skip
        values = values.reshape(len(rows), *expected[len(indices.shape) :])
        write_window_extras(
            self._store.fields["extras"][name], memory, rows, envs, values, self._windows_at
        )
        self._store.packed.sync_mirror()

    def _window_slots(self, indices: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(rows, envs, indices)`` of sampled windows' anchor slots, checked."""
        indices = _to_numpy(indices)
        if indices.dtype.kind not in "iu":
            raise TypeError(f"indices: expected integers, got dtype {indices.dtype}")
        flat = indices.reshape(-1).astype(np.int64)
        slots = self.buffer_size * self.num_envs
        memory = self._window_memory
        if memory is None or ((flat < 0) | (flat >= slots)).any():
            raise ValueError("indices: expected the indices of a sample_sequences batch")
        rows, envs = np.divmod(flat, self.num_envs)
        if not memory.known(rows, envs).all():
            raise ValueError("indices: some are no window's anchor (from sample_sequences)")
        return rows, envs, indices

    def _windows_at(self, anchors: np.ndarray, length: int, burn_in: int, boundary: str) -> Windows:
        ring, views = self._ring, self._store.fields
        return window_rows(
            ring.valid, views["dones"], views["truncateds"], ring.pos, ring.size, anchors,
            int(burn_in), int(length), boundary == "cross",
        )  # fmt: skip

    def _windows_of_slots(
        self, envs: np.ndarray, rows: np.ndarray, length: int, burn_in: int, boundary: str
    ) -> Windows:
        """``(k, 1, T)`` windows anchored at ``rows`` (k,), window i in sub-env ``envs[i]``: each
        sub-env's anchors walked by the same kernel as ``sample_sequences``' (its columns)."""
        k, steps = len(rows), int(burn_in) + int(length)
        out = Windows(
            np.full((k, 1, steps), -1, dtype=np.int64), np.zeros((k, 1, steps), dtype=bool),
            np.empty((k, 1), dtype=np.int64), np.empty((k, 1), dtype=np.int64),
        )  # fmt: skip
        ring, views = self._ring, self._store.fields
        for env in np.unique(envs):
            mine, column = np.flatnonzero(envs == env), slice(env, env + 1)
            part = window_rows(
                ring.valid[:, column], views["dones"][:, column], views["truncateds"][:, column],
                ring.pos[column], ring.size[column], rows[mine][None, :], int(burn_in),
                int(length), boundary == "cross",
            )  # fmt: skip
            for whole, piece in zip(out, part, strict=True):
                whole[mine, 0] = piece[0]
        return out

    def _package_windows(
        self,
        windows: Windows,
        anchors: np.ndarray,
        burn_in: int,
        flatten_env: bool,
        dtype: Any,
        weights: np.ndarray | None = None,
    ) -> SequenceTrajectories:
        fields = gather_windows(
            self._reader, windows.rows, windows.is_first, anchors, int(burn_in), self.num_envs
        )
        if weights is not None:
            fields["weights"] = weights
        shaped = shape_env_axis(fields, self.env_info.is_vector, flatten_env)
        return SequenceTrajectories(**convert(shaped, dtype, self._device_spec))


def _to_numpy(value: Any) -> np.ndarray:
    """``value`` as a numpy array; torch tensors are detached and copied to the cpu."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)
