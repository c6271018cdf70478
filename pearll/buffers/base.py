"""BaseBuffer: the abstract API of every buffer, and what each holds: env, RNG, lock, parts."""

from __future__ import annotations

import os
import threading
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar, TypeVar

import numpy as np

from pearll.buffers import persistence
from pearll.buffers.checkpoint.protocol import generator_from_state, keywords_taken
from pearll.buffers.core.env_info import EnvInfo
from pearll.buffers.core.locking import locked
from pearll.buffers.core.part import Parts
from pearll.buffers.core.spaces import buffer_field_specs, extra_field_specs
from pearll.buffers.reading.output import resolve_device
from pearll.buffers.storage.frame_options import FrameOptions
from pearll.buffers.storage.placement import Placement
from pearll.buffers.storage.transitions import TransitionStore
from pearll.common.arguments import check_int
from pearll.common.enumerations import TrajectoryType
from pearll.common.tree import tree_map
from pearll.common.type_aliases import Observation, Trajectories

Buffer = TypeVar("Buffer", bound="BaseBuffer")
__all__ = ["BaseBuffer", "locked"]


class BaseBuffer(ABC):
    """The API of a buffer of ``buffer_size`` steps of ``env``, and what every buffer holds.

    A buffer is a composition of parts (``self._parts``, see :mod:`pearll.buffers.core.part`):
    its transition store (``self._store``, the arrays below), its ring bookkeeping and what its
    class adds. ``nbytes``, ``reset``, ``save`` and ``load`` go over the parts; subclasses build
    them (RingBuffer: the store and the ring) and record their constructor settings
    (:meth:`_record_settings`) for checkpoints.

    Args:
        env: a gymnasium ``Env`` or ``VectorEnv`` (anything with ``observation_space`` and
            ``action_space``; with ``num_envs`` it is taken as a vector env).
        buffer_size: rows per sub-env.
        device: where ``dtype="torch"`` output lands; ``"auto"`` is cuda when available, else cpu.
        seed: an int or a ``numpy.random.Generator`` for this buffer's sampling (no global RNG).
        autoreset_mode: overrides ``env.metadata["autoreset_mode"]`` of a vector env.
        extra_fields: per-step fields the caller stores beside the transition, as
            ``{name: (shape, dtype)}``, e.g. ``{"log_prob": ((), np.float32)}``; the add methods
            then take each as a keyword argument and read-outs return them in ``extras``.
        storage: ``"memory"``, or ``"memmap"`` to keep the transitions in memory-mapped files
            (a buffer larger than RAM); ``storage_dir``: where (default: the temp directory).
            See :mod:`pearll.buffers.storage.placement`.
        frame_options: how observations are frame-stacked (RingBuffer passes its own; default:
            stored whole).

    Arrays (numpy views of the store, allocated lazily by the OS, checked against available
    memory first):
    ``observations`` ``(buffer_size, [E,] *obs_shape)`` in the space's dtype (a dict of arrays
    for Dict spaces), ``actions`` ``(buffer_size, [E,] *act_shape)`` (``(..., 1)`` int64 for
    Discrete), ``rewards`` and ``dones`` ``(buffer_size, [E,] 1)`` float32, ``truncateds``
    ``(buffer_size, [E,] 1)`` bool, ``extras[name]`` ``(buffer_size, [E,] *shape)`` in the
    declared dtype. The env axis ``E`` is there only for vector envs.

    Persistence: :meth:`save` and :meth:`load` (see :mod:`pearll.buffers.persistence` for the
    format, and :mod:`pearll.buffers.core.part` for how a part saves its own state).
    Threads: ``self._lock`` (an RLock) guards the state; methods that change it, or choose rows
    and read them, are decorated with :func:`locked`, so one thread may add while another
    samples.
    """

    # How a class keeps next observations: None (not at all: BaseBuffer's arrays are the
    # tutorial's), True (in the next row of ``observations``: ReplayBuffer), False (in an array
    # of their own: RolloutBuffer).
    spare_rows: ClassVar[bool | None] = None
    # Per-step fields a class stores beside the transition (RolloutBuffer: its estimates).
    own_fields: ClassVar[dict[str, Any]] = {}
    # The parts a class adds beside its store, whose bytes the memory check counts before
    # anything is allocated: classes with ``bytes_for(capacity, num_envs)``.
    sized_parts: ClassVar[tuple[Any, ...]] = ()

    def __init__(
        self,
        env: Any,
        buffer_size: int,
        device: Any = "auto",
        *,
        seed: int | np.random.Generator | None = None,
        autoreset_mode: Any = None,
        extra_fields: dict[str, Any] | None = None,
        storage: str = "memory",
        storage_dir: Any = None,
        frame_options: FrameOptions | None = None,
    ) -> None:
        check_int(buffer_size, "buffer_size", 1)
        self._lock = threading.RLock()
        self.env_info = EnvInfo.of(env, autoreset_mode)
        self.buffer_size = int(buffer_size)
        self._device_spec = device
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._extra_specs = extra_field_specs(extra_fields)
        self._placement = Placement(storage, storage_dir)
        self._parts = Parts()
        frames = frame_options or FrameOptions(None, None)
        self._frame_options = frames
        info, owner = self.env_info, type(self).__name__
        self._specs = buffer_field_specs(
            info, self._extra_specs, self.spare_rows is False, self.own_fields
        )
        self._store = TransitionStore(
            self._specs, frames, info.observation_space, self.buffer_size, self.num_envs,
            self.spare_rows is True, self._placement,
        )  # fmt: skip
        if not persistence.rebuilding():  # load checks memory for what it reads itself
            beside = sum(p.bytes_for(self.buffer_size, self.num_envs) for p in self.sized_parts)
            required, bulk = self._store.required_bytes + beside, self._store.bulk_bytes
            self._placement.check(required, bulk, owner)
        # Zeroed pages are only claimed when written: a buffer being loaded, whose arrays the
        # saved ones replace, never claims them.
        self._store.allocate()
        self._parts.add("store", self._store)
        extra_json = {name: [list(s.shape), s.dtype.str] for name, s in self._extra_specs.items()}
        self._record_settings(
            buffer_size=self.buffer_size, device=str(device),
            autoreset_mode=self.env_info.autoreset_mode.value, extra_fields=extra_json,
            storage=storage,
        )  # fmt: skip

    def _record_settings(self, **settings: Any) -> None:
        """Keep constructor arguments (JSON values) for :meth:`_config`: each class's
        constructor records its own."""
        self.__dict__.setdefault("_settings", {}).update(settings)

    def _record_settings_from(self, **attributes: str) -> None:
        """Constructor arguments that :meth:`_config` reads from attributes when it runs
        (setting -> attribute name), for settings a user may change (``buffer.alpha = 0.7``)."""
        self.__dict__.setdefault("_live_settings", {}).update(attributes)

    @property
    def num_envs(self) -> int:
        return self.env_info.num_envs

    @property
    def device(self) -> Any:
        """The torch.device of ``dtype="torch"`` output (imports torch)."""
        return resolve_device(self._device_spec)

    @property
    def nbytes(self) -> int:
        """Bytes the buffer allocated (its capacity, not what is filled), padding included:
        the sum over its parts (stored fields, ring, and what the class adds)."""
        return self._parts.nbytes

    def _public(self, name: str) -> Any:
        """A view of a stored array, without the env axis for a single env."""
        tree = self._store.fields[name]
        return tree if self.env_info.is_vector else tree_map(lambda a: a[:, 0], tree)

    @property
    def observations(self) -> Any:
        return self._public("observations")

    @property
    def actions(self) -> np.ndarray:
        return self._public("actions")

    @property
    def rewards(self) -> np.ndarray:
        return self._public("rewards")

    @property
    def dones(self) -> np.ndarray:
        return self._public("dones")

    @property
    def truncateds(self) -> np.ndarray:
        return self._public("truncateds")

    @property
    def extras(self) -> dict[str, np.ndarray]:
        """The caller-declared per-step fields (see ``extra_fields``), name -> array view."""
        return self._public("extras")

    def __getstate__(self) -> dict[str, Any]:
        # A lock cannot be pickled; a copy gets a lock of its own.
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()

    # --- persistence (protocol: pearll/buffers/persistence.py) -------------------------------

    def save(self, path: str | os.PathLike, progress: bool | None = None) -> Path:
        """Save the buffer to the checkpoint directory ``path``, crash-safely; return ``path``.

        A directory of ``.npy`` files and a JSON manifest (format, checksums, spaces), written
        straight from the arrays (no copy of them in memory). A process killed during the save
        leaves the previous checkpoint at ``path``, or the new one; never a mix. Other threads'
        adds and samples wait until it is done. ``progress``: a tqdm bar (default: >= 100 MB).
        """
        return persistence.save(self, path, progress)

    @classmethod
    def load(
        cls: type[Buffer],
        path: str | os.PathLike,
        env: Any = None,
        mmap: bool = False,
        *,
        verify: bool | None = None,
        progress: bool | None = None,
        **overrides: Any,
    ) -> Buffer:
        """The buffer saved at ``path``, behaving exactly as when saved (same seeded samples).

        ``env=None`` rebuilds the spaces from the checkpoint. ``mmap=True`` maps the arrays
        from disk copy-on-write instead of reading them (instant; the files never change);
        their checksums are then checked only with ``verify=True``. Raises
        :class:`~pearll.buffers.errors.CheckpointError` for a damaged or foreign checkpoint.
        ``overrides``: constructor keywords over the saved ones (``compute_reward=``,
        ``device=``).
        """
        return persistence.load(cls, path, env, mmap, verify, progress, **overrides)

    def _config(self) -> dict[str, Any]:
        """JSON-able keyword arguments with which ``cls(env, **config)`` rebuilds this buffer:
        the settings its constructors recorded that its class's constructor takes."""
        read_from = self.__dict__.get("_live_settings", {})
        live = {setting: getattr(self, name) for setting, name in read_from.items()}
        taken = keywords_taken(type(self))
        settings = self._settings | live
        return {k: v for k, v in settings.items() if taken is None or k in taken}

    def _state(self) -> dict[str, Any]:
        """What changes as the buffer is used: each part's entries (see core/part.py) and the
        random generator's state, arrays and JSON values (see persistence)."""
        return {**self._parts.state(), "rng": self.rng.bit_generator.state}

    def _set_state(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`_state` returned (on a buffer rebuilt with :meth:`_config`)."""
        self._parts.set_state(state)
        self.rng = generator_from_state(state["rng"])

    @abstractmethod
    def reset(self) -> None:
        """Empty the buffer: every part as after construction (zeroed arrays)."""
        self._parts.reset()

    @abstractmethod
    def add_trajectory(
        self,
        observation: Observation,
        action: np.ndarray | int,
        reward: float | np.ndarray,
        next_observation: Observation,
        done: bool | np.ndarray,
    ) -> None:
        """Store one env step (one per sub-env for a vector env)."""

    @abstractmethod
    def sample(
        self,
        batch_size: int,
        flatten_env: bool = False,
        dtype: str | TrajectoryType = "numpy",
    ) -> Trajectories:
        """A batch of stored transitions."""

    @abstractmethod
    def last(
        self,
        batch_size: int,
        flatten_env: bool = False,
        dtype: str | TrajectoryType = "numpy",
    ) -> Trajectories:
        """The most recent ``batch_size`` transitions, in order."""

    @abstractmethod
    def all(
        self,
        flatten_env: bool = False,
        dtype: str | TrajectoryType = "numpy",
    ) -> Trajectories:
        """Every stored transition, in order."""
