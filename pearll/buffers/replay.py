"""ReplayBuffer: uniform sampling for off-policy learning, one observation array for s and s'."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np

from pearll.buffers.base import locked
from pearll.buffers.core.checks import check_batch_size
from pearll.buffers.pool_sampling import PoolSampling
from pearll.buffers.reading.gather import READ_FIELDS
from pearll.buffers.reading.output import convert, record_of
from pearll.buffers.ring_buffer import RingBuffer
from pearll.buffers.sampling.uniform import draw_flat_pairs, draw_flat_rows, draw_pairs, draw_rows
from pearll.buffers.sequence_sampling import SequenceSampling
from pearll.common.arguments import check_int
from pearll.common.enumerations import TrajectoryType, parse_trajectory_type
from pearll.common.type_aliases import Trajectories

if TYPE_CHECKING:
    from pearll.datasets.minari import MinariExport

PAIR_FIELDS = (*READ_FIELDS, "next_observations")
Replay = TypeVar("Replay", bound="ReplayBuffer")


class ReplayBuffer(SequenceSampling, PoolSampling, RingBuffer):
    """Off-policy replay: ``sample`` draws uniformly, with replacement, per sub-env.

    Observations and next observations share one array (half the observation memory): the
    transition in row r has its next observation in row r + 1. Episode ends stay exact: the
    final observation of an episode (terminated or truncated) is kept in the row after its last
    transition, and that row is never sampled as a transition. So every returned transition is
    one the env produced, at the cost of one row per episode end.

    Retention: ``buffer_size`` counts rows per sub-env (at least 3). Each sub-env keeps its most
    recent transitions that fit in ``buffer_size - 1`` rows, a row each and one more per episode
    end among them: at least ``buffer_size - ends - 2`` (``ends`` the episode ends among them),
    ``buffer_size - ends - 1`` unless the next older transition ended an episode. The newest
    transition is always stored; nothing overwritten is returned.

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

    Pooled readers (the replay service): ``pool_mass``, ``draw_slots``, ``read_transitions``
    and ``read_windows`` draw and read by slot over every sub-env at once (see
    :mod:`pearll.buffers.pool_sampling`).
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
        self._record_settings_from(n_step="n_step", gamma="gamma")

    @classmethod
    def from_minari(
        cls: type[Replay],
        dataset: Any,
        *,
        env: Any = None,
        buffer_size: int | None = None,
        storage: str = "memory",
        seed: int | np.random.Generator | None = None,
        progress: bool | None = None,
        **buffer_kwargs: Any,
    ) -> Replay:
        """A new buffer of this class holding every episode of a Minari dataset, exactly.

        ``dataset``: a ``minari.MinariDataset`` or the id of a local one (never downloaded).
        ``env`` (optional, single or vector) is checked against the dataset's spaces; the
        buffer is a single-env buffer of the dataset's spaces either way. ``buffer_size``
        defaults to what holds the whole dataset (steps + episodes + 1 rows: each episode end
        keeps its final observation in a row of its own). ``storage="memmap"`` for datasets
        larger than RAM; ``progress``: a tqdm bar (default: 100k steps or more). Other keyword
        arguments go to the constructor (``n_step``, ``alpha``, ``compute_reward`` for
        HERBuffer, ...). Rewards are stored as float32. Needs ``pip install 'pearll[minari]'``
        (Python >= 3.11); see :mod:`pearll.datasets.minari` and docs/offline.md.
        """
        from pearll.datasets.minari import load_buffer

        return load_buffer(
            cls, dataset, env=env, buffer_size=buffer_size, storage=storage, seed=seed,
            progress=progress, **buffer_kwargs,
        )  # fmt: skip

    def to_minari(
        self, dataset_id: str, *, progress: bool | None = None, **dataset_metadata: Any
    ) -> MinariExport:
        """Write every complete episode held (of every sub-env) as the Minari dataset
        ``dataset_id``, losslessly; returns ``(dataset, n_written, n_left_out)``.

        Episodes still open at the write position or cut by overwriting are left out.
        ``dataset_metadata`` goes to ``minari.create_dataset_from_buffers`` (``author=``,
        ``algorithm_name=``, ``env=``, ``data_format=``, ...). The id is checked before
        anything is created. See :mod:`pearll.datasets.minari_write` and docs/offline.md.
        """
        from pearll.datasets.minari_write import write_dataset

        return write_dataset(self, dataset_id, progress, **dataset_metadata)

    @locked
    def sample(
        self, batch_size: int, flatten_env: bool = False, dtype: str | TrajectoryType = "numpy"
    ) -> Trajectories:
        """``batch_size`` transitions, drawn uniformly with replacement.

        Shapes ``(B, ...)`` for a single env; ``(E, B, ...)`` for E sub-envs, B drawn from each
        sub-env independently (every sub-env must hold a transition); with ``flatten_env``,
        ``(B, ...)``: B transitions in all, drawn uniformly among every stored transition of
        every sub-env (as SB3 and CleanRL do), so a sub-env holding more is drawn more often.
        """
        check_batch_size(batch_size)
        parse_trajectory_type(dtype)
        if flatten_env and self.env_info.is_vector:
            if self.n_step is None and self._store.frames is None:
                pairs = draw_flat_pairs(self.rng, self._ring, self._store.packed, batch_size)
                return self._package_pairs(pairs, batch_size, True, dtype)
            rows, envs = draw_flat_rows(self.rng, self._ring, batch_size)
            return self._flat_trajectories(rows, envs, dtype)
        if self.n_step is None and self._store.frames is None:
            pairs = draw_pairs(self.rng, self._ring, self._store.packed, batch_size)
            return self._package_pairs(pairs, batch_size, flatten_env, dtype)
        rows = draw_rows(self.rng, self._ring, batch_size)
        return self._trajectories(rows, flatten_env, dtype)

    @locked
    def end_episodes(self, envs: Any = None) -> np.ndarray:
        """End the running episode of each sub-env in ``envs`` (default: all) at its last stored
        step, as a truncation.

        For a stream that will not continue where the buffer stopped (a replay shard restored
        from a checkpoint, a run resumed with freshly reset envs): without it the next add's
        first observation would become the next observation of the last stored step, a
        transition the env never produced. The last stored step keeps its true next observation
        and gets ``truncated=True`` (``dones`` unchanged: a learner bootstraps from it, n-step
        returns stop at it), exactly as if it had been added with ``truncated=True``; the next
        add starts a new episode. In NEXT_STEP mode the next step of each sub-env is then taken
        for a reset step and dropped, as after any episode end. Returns the sub-envs whose
        episode was ended (those whose last stored step had not ended one; sub-envs that hold
        nothing are left as they are). Raises ValueError for an index outside ``[0, E)``.
        """
        chosen = np.arange(self.num_envs) if envs is None else np.asarray(envs)
        if (
            chosen.ndim != 1
            or chosen.dtype.kind not in "iu"
            or ((chosen < 0) | (chosen >= self.num_envs)).any()
        ):
            raise ValueError(
                f"envs: expected sub-env indices in [0, {self.num_envs}), got {envs!r}"
            )
        return self._writer.end_episodes(np.unique(chosen.astype(np.int64)))

    def _flat_trajectories(
        self, rows: np.ndarray, envs: np.ndarray, dtype: str | TrajectoryType
    ) -> Trajectories:
        """Trajectories ``(B, ...)`` of the transitions at ``(rows[i], envs[i])``, each ``(B,)``:
        gathered as B sub-envs of one transition each, then merged."""
        return self._package(self._gather(rows[:, None], envs), True, dtype)

    def _package_pairs(
        self, pairs: np.ndarray, batch_size: int, flatten_env: bool, dtype: str | TrajectoryType
    ) -> Trajectories:
        """Trajectories of ``draw_pairs``' records, already in the batch shape asked for."""
        if self.env_info.is_vector and not flatten_env:
            pairs = pairs.reshape(self.num_envs, batch_size)
        readers = self._store.packed.pair_readers
        fields = {name: readers[name](pairs) for name in PAIR_FIELDS}
        return record_of(convert(fields, dtype, self._device_spec))


def _check_n_step(n_step: Any, gamma: Any) -> tuple[int | None, float | None]:
    """Validated ``(n_step, gamma)``: both None, or an int >= 1 and a float in [0, 1]."""
    if n_step is None and gamma is None:
        return None, None
    if n_step is None or gamma is None:
        raise ValueError(
            f"n_step and gamma go together: got n_step={n_step!r}, gamma={gamma!r}; give both "
            "for n-step returns or neither"
        )
    n_step = check_int(n_step, "n_step", 1, "an int >= 1", ValueError)
    if isinstance(gamma, bool) or not isinstance(gamma, int | float | np.floating | np.integer):
        raise TypeError(f"gamma: expected a float in [0, 1], got {type(gamma).__name__}")
    if not 0.0 <= float(gamma) <= 1.0:
        raise ValueError(f"gamma: expected a float in [0, 1], got {gamma!r}")
    return int(n_step), float(gamma)
