"""ReplayBuffer: uniform sampling for off-policy learning, one observation array for s and s'."""

from __future__ import annotations

from typing import Any

import numpy as np

from pearll.buffers.base import locked
from pearll.buffers.nstep import nstep_returns
from pearll.buffers.output import convert
from pearll.buffers.ring import WritePlan
from pearll.buffers.ring_buffer import READ_FIELDS, RingBuffer, _check_batch_size, env_column
from pearll.buffers.uniform_draw import draw_pairs
from pearll.common.enumerations import TrajectoryType, parse_trajectory_type
from pearll.common.type_aliases import Trajectories

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
    :mod:`pearll.buffers.frame_stack`).

    Compressed frames: ``frame_compression="lz4"`` (or ``"zstd"``; default None) also keeps each
    stored frame compressed losslessly (``pip install 'pearll[compress]'``); stacks are still
    bit-exact, with the same wraparound and persistence. Preprocessed Atari frames take 250 B to
    1.9 KB each with lz4 instead of 7 KB, at the cost of compressing each frame when it is added
    and decompressing the frames a batch needs when it is read. ``buffer.observations`` is then
    a :class:`~pearll.buffers.compressed_frames.CompressedFrames` view that decompresses what
    it is indexed with. The memory check reserves a third of the raw frames; see
    :mod:`pearll.buffers.compressed_frames`.

    n-step returns: with ``n_step`` (an int >= 1) and ``gamma`` (in [0, 1]) every transition
    returned (by ``sample``, ``last`` and ``all``) starts at a stored step and spans up to
    ``n_step`` steps of its episode, computed at read time (see :mod:`pearll.buffers.nstep`):
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
        _check_batch_size(batch_size)
        parse_trajectory_type(dtype)
        if self.n_step is None and self._frames is None:
            pairs = draw_pairs(self.rng, self._ring, self._packed, batch_size)
            return self._package_pairs(pairs, batch_size, flatten_env, dtype)
        rows = self._ring.uniform_rows(self.rng, batch_size)
        return self._trajectories(rows, flatten_env, dtype)

    @locked
    def end_episodes(self, envs: Any = None) -> np.ndarray:
        """End each running episode of sub-envs ``envs`` (default: all) at its newest step.

        For a caller whose next step does not follow on from the last one (an env restarted
        mid-episode, a buffer loaded into another run): the newest step becomes the episode's
        last, truncated (it bootstraps from its stored next observation), so the next step
        starts a new episode instead of being taken as the continuation. Sub-envs whose last
        step already ended an episode, or that hold nothing, are left as they are. Costs one row
        per episode ended, like any episode end. Returns the sub-envs whose episode it ended.
        """
        ring = self._ring
        chosen = np.arange(self.num_envs) if envs is None else np.asarray(envs, dtype=np.int64)
        outside = (chosen < 0) | (chosen >= self.num_envs)
        if chosen.ndim != 1 or outside.any():
            raise ValueError(
                f"envs: expected sub-env indices in [0, {self.num_envs}), got {envs!r}"
            )
        chosen = np.unique(chosen)
        running = chosen[~ring.prev_ended[chosen] & (ring.size[chosen] > 0)]
        if not len(running):
            return running
        newest = (ring.pos[running] - 1) % self.buffer_size
        self._storage["truncateds"][newest, running] = True
        if self._frames is not None:
            self._frames.episode_step[running] = 0
        self._episodes_ended(running)
        # The row after the pending observation becomes the next episode's first row.
        advance = np.zeros(self.num_envs, dtype=np.int64)
        advance[running] = 1
        ended_last = ring.prev_ended.copy()
        ended_last[running] = True
        none = np.zeros(0, dtype=np.int64)
        flags = np.zeros((0, self.num_envs), dtype=bool)
        plan = WritePlan(none, none, none, none, none, none, advance, ended_last, flags, flags)
        passed_rows, passed_envs = ring.commit(plan)
        self._on_written(none, none, passed_rows, passed_envs)
        return running

    def _episodes_ended(self, envs: np.ndarray) -> None:
        """Hook: ``end_episodes`` is about to end the running episodes of ``envs``."""

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
