"""ReplayBuffer: uniform sampling for off-policy learning, one observation array for s and s'."""

from __future__ import annotations

from typing import Any

import numpy as np

from pearll.buffers.base import locked
from pearll.buffers.core.checks import check_batch_size
from pearll.buffers.reading.gather import READ_FIELDS, env_column
from pearll.buffers.reading.nstep import nstep_returns
from pearll.buffers.reading.output import convert, shape_env_axis
from pearll.buffers.reading.sequences import gather_windows
from pearll.buffers.ring_buffer import RingBuffer
from pearll.buffers.sampling.sequences import Windows, check_window_args, window_rows
from pearll.buffers.sampling.uniform import draw_pairs, draw_rows
from pearll.buffers.sampling.window_memory import WindowMemory
from pearll.buffers.writing.window_extras import write_window_extras
from pearll.common.enumerations import TrajectoryType, parse_trajectory_type
from pearll.common.type_aliases import SequenceTrajectories, Trajectories

PAIR_FIELDS = (*READ_FIELDS, "next_observations")


class ReplayBuffer(RingBuffer):
    """Off-policy replay: ``sample`` draws uniformly, with replacement, per sub-env.

    Observations and next observations share one array (half the observation memory): the
    transition in row r has its next observation in row r + 1. Episode ends stay exact: the
    final observation of an episode (terminated or truncated) is kept in the row after its last
    transition, and that row is never sampled as a transition. So every returned transition is
    one the env produced, at the cost of one row per episode end.

    Retention: each sub-env keeps at least its ``buffer_size - ends - 1`` most recent
    transitions, ``ends`` being the episode ends among them; nothing overwritten is returned.

    Assumes that within an episode each step's ``observation`` equals the previous step's
    ``next_observation`` (gymnasium's contract); the newer value is kept if they differ.

    Frame-stacked observations (Atari): with ``frame_stack="auto"`` (the default) an env wrapped
    in gymnasium's ``FrameStackObservation`` is detected, and each row stores one frame instead
    of the whole stack; stacks (with the wrapper's padding at episode starts) are rebuilt
    bit-exactly when read, so ``sample`` returns what the env returned. ``frame_stack=k``
    declares k frames (padded with the episode's first frame, the wrapper's default);
    ``frame_stack=None`` stores whole observations. With frame stacks ``buffer.observations``
    holds frames, ``(buffer_size, [E,] *frame_shape)``, and the oldest k - 1 rows of a full
    ring may stop being transitions when the frames their stacks need are overwritten (see
    :mod:`pearll.buffers.storage.frames`).

    Compressed frames: ``frame_compression="lz4"`` (or ``"zstd"``; default None) also keeps each
    stored frame compressed losslessly (``pip install 'pearll[compress]'``); stacks are still
    bit-exact, with the same wraparound and persistence. Preprocessed Atari frames take 250 B to
    1.9 KB each with lz4 instead of 7 KB, at the cost of compressing each frame when it is added
    and decompressing the frames a batch needs when it is read. ``buffer.observations`` is then
    a :class:`~pearll.buffers.storage.compressed_frames.CompressedFrames` view that decompresses
    what it is indexed with. The memory check reserves a third of the raw frames; see
    :mod:`pearll.buffers.storage.compressed_frames`.

    n-step returns: with ``n_step`` (an int >= 1) and ``gamma`` (in [0, 1]) every transition
    returned (by ``sample``, ``last`` and ``all``) starts at a stored step and spans up to
    ``n_step`` steps of its episode, computed at read time (see
    :mod:`pearll.buffers.reading.nstep`):
    ``rewards`` is the discounted sum, ``next_observations`` the observation after the last
    step spanned, ``dones`` whether that step terminated, and the record's ``discounts`` holds
    ``gamma ** k`` for the k steps spanned; with ``n_step=1`` it is ``gamma`` everywhere.
    Without ``n_step``, ``discounts`` is None. A sample spans fewer steps at an episode end and
    at the newest transition (whose successors are not stored yet).
    """

    spare_rows = True

    def __init__(
        self,
        env: Any,
        buffer_size: int,
        device: Any = "auto",
        *,
        n_step: int | None = None,
        gamma: float | None = None,
        frame_stack: Any = "auto",
        frame_compression: str | None = None,
        **kwargs: Any,
    ) -> None:
        self.n_step, self.gamma = _check_n_step(n_step, gamma)
        super().__init__(
            env, buffer_size, device, frame_stack=frame_stack,
            frame_compression=frame_compression, **kwargs,
        )  # fmt: skip

    def _config(self) -> dict[str, Any]:
        return {**super()._config(), "n_step": self.n_step, "gamma": self.gamma}

    @locked
    def sample(
        self, batch_size: int, flatten_env: bool = False, dtype: str | TrajectoryType = "numpy"
    ) -> Trajectories:
        """``batch_size`` transitions per sub-env, drawn uniformly with replacement.

        Shapes ``(B, ...)``, ``(E, B, ...)`` (each sub-env drawn independently), or
        ``(E * B, ...)`` with ``flatten_env``.
        """
        check_batch_size(batch_size)
        parse_trajectory_type(dtype)
        if self.n_step is None and self._frames is None:
            pairs = draw_pairs(self.rng, self._ring, self._packed, batch_size)
            return self._package_pairs(pairs, batch_size, flatten_env, dtype)
        rows = draw_rows(self.rng, self._ring, batch_size)
        return self._trajectories(rows, flatten_env, dtype)

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
        if self._window_memory is None:  # made on first use: other buffers' adds pay nothing
            self._window_memory = WindowMemory(self.buffer_size, self.num_envs)
            self._observers.append(self._window_memory.written)
        self._window_memory.remember(anchors, windows, burn_in, length, boundary == "cross")
        return self._package_windows(windows, anchors, burn_in, flatten_env, dtype, weights)

    _window_memory: WindowMemory | None = None

    def _draw_anchors(self, batch_size: int) -> tuple[np.ndarray, np.ndarray | None]:
        """``(E, B)`` anchor rows drawn uniformly over each sub-env's transitions; no weights."""
        return draw_rows(self.rng, self._ring, batch_size), None

    def _forget_windows(self) -> None:
        """Drop the memory of sampled windows (the rows it describes are gone)."""
        if self._window_memory is not None:
            self._observers.remove(self._window_memory.written)
            self._window_memory = None

    def reset(self) -> None:
        with self._lock:
            self._forget_windows()
            super().reset()

    def _set_state(self, state: dict[str, Any]) -> None:
        self._forget_windows()
        super()._set_state(state)

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
            self._storage["extras"][name], memory, rows, envs, values, self._windows_at
        )
        self._packed.sync_mirror()

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
        ring, views = self._ring, self._storage
        return window_rows(
            ring.valid, views["dones"], views["truncateds"], ring.pos, ring.size, anchors,
            int(burn_in), int(length), boundary == "cross",
        )  # fmt: skip

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

    def _package_pairs(
        self, pairs: np.ndarray, batch_size: int, flatten_env: bool, dtype: str | TrajectoryType
    ) -> Trajectories:
        """Trajectories of ``draw_pairs``' records, already in the batch shape asked for."""
        if self.env_info.is_vector and not flatten_env:
            pairs = pairs.reshape(self.num_envs, batch_size)
        readers = self._packed.pair_readers
        fields = {name: readers[name](pairs) for name in PAIR_FIELDS}
        return self._record(convert(fields, dtype, self._device_spec))

    def _gather(
        self, rows: np.ndarray, envs: Any = None, last_rows: np.ndarray | None = None
    ) -> dict[str, Any]:
        if self.n_step is None:
            return super()._gather(rows, envs, last_rows)
        returns = nstep_returns(
            self._storage, self._ring.valid, rows, env_column(self.num_envs, envs),
            self.n_step, self.gamma,
        )  # fmt: skip
        gathered = super()._gather(rows, envs, returns.last_rows)
        gathered["rewards"] = returns.rewards
        gathered["discounts"] = returns.discounts
        return gathered


def _to_numpy(value: Any) -> np.ndarray:
    """``value`` as a numpy array; torch tensors are detached and copied to the cpu."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _check_n_step(n_step: Any, gamma: Any) -> tuple[int | None, float | None]:
    """Validated ``(n_step, gamma)``: both None, or an int >= 1 and a float in [0, 1]."""
    if n_step is None and gamma is None:
        return None, None
    if n_step is None or gamma is None:
        raise ValueError(
            f"n_step and gamma go together: got n_step={n_step!r}, gamma={gamma!r}; give both "
            "for n-step returns or neither"
        )
    if isinstance(n_step, bool) or not isinstance(n_step, int | np.integer) or n_step < 1:
        raise ValueError(f"n_step: expected an int >= 1, got {n_step!r}")
    if isinstance(gamma, bool) or not isinstance(gamma, int | float | np.floating | np.integer):
        raise TypeError(f"gamma: expected a float in [0, 1], got {type(gamma).__name__}")
    if not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(f"gamma: expected a float in [0, 1], got {gamma!r}")
    return int(n_step), float(gamma)
