"""BaseBuffer: the abstract API of every buffer, and its arrays allocated from the env's spaces."""

from __future__ import annotations

import functools
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from pearll.buffers import persistence
from pearll.buffers.core.env_info import EnvInfo
from pearll.buffers.core.spaces import SCALAR_BOOL, SCALAR_FLOAT, extra_field_specs, spec_from_space
from pearll.buffers.errors import CheckpointError
from pearll.buffers.reading.output import resolve_device
from pearll.buffers.storage.packed import PackedStorage, required_bytes
from pearll.buffers.storage.placement import Placement
from pearll.common.enumerations import TrajectoryType
from pearll.common.tree import tree_map
from pearll.common.type_aliases import Observation, Trajectories

Buffer = TypeVar("Buffer", bound="BaseBuffer")
Method = TypeVar("Method", bound=Callable[..., Any])


def locked(method: Method) -> Method:
    """``method`` run holding the buffer's lock (``self._lock``, reentrant).

    Every method that changes a buffer's state, or chooses rows and reads them, carries it, so
    that adds and samples may come from different threads (see RingBuffer's docstring).
    """

    @functools.wraps(method)
    def holding_the_lock(self: Any, *args: Any, **kwargs: Any) -> Any:
        with self._lock:
            return method(self, *args, **kwargs)

    return holding_the_lock  # type: ignore[return-value]


class BaseBuffer(ABC):
    """Arrays for ``buffer_size`` steps of ``env``, allocated from its spaces after a memory check.

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

    Arrays (numpy, allocated lazily by the OS, checked against available memory first):
    ``observations`` ``(buffer_size, [E,] *obs_shape)`` in the space's dtype (a dict of arrays
    for Dict spaces), ``actions`` ``(buffer_size, [E,] *act_shape)`` (``(..., 1)`` int64 for
    Discrete), ``rewards`` and ``dones`` ``(buffer_size, [E,] 1)`` float32, ``truncateds``
    ``(buffer_size, [E,] 1)`` bool, ``extras[name]`` ``(buffer_size, [E,] *shape)`` in the
    declared dtype. The env axis ``E`` is there only for vector envs.

    Persistence: :meth:`save` and :meth:`load` (see :mod:`pearll.buffers.persistence` for the
    format and for the three methods through which a subclass saves its own state).
    Threads: ``self._lock`` (an RLock) guards the state; methods that change it, or choose rows
    and read them, are decorated with :func:`locked`, so one thread may add while another
    samples.
    """

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
    ) -> None:
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int | np.integer):
            raise TypeError(f"buffer_size: expected an int, got {type(buffer_size).__name__}")
        if buffer_size <= 0:
            raise ValueError(f"buffer_size: expected a positive int, got {buffer_size}")
        self._lock = threading.RLock()
        self.env_info = EnvInfo.of(env, autoreset_mode)
        self.buffer_size = int(buffer_size)
        self._device_spec = device
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._extra_specs = extra_field_specs(extra_fields)
        self._specs = self._field_specs()
        self._placement = Placement(storage, storage_dir)
        if not persistence.rebuilding():  # load checks memory for what it reads itself
            self._placement.check(self._required_bytes(), self._bulk_bytes(), type(self).__name__)
        # Zeroed pages are only claimed when written: a buffer being loaded, whose arrays the
        # saved ones replace, never claims them.
        self._storage = self._allocate()

    @property
    def num_envs(self) -> int:
        return self.env_info.num_envs

    @property
    def device(self) -> Any:
        """The torch.device of ``dtype="torch"`` output (imports torch)."""
        return resolve_device(self._device_spec)

    def _field_specs(self) -> dict[str, Any]:
        """Name -> FieldSpec tree of every per-step array; subclasses add their own."""
        info = self.env_info
        return {
            "observations": spec_from_space(info.observation_space),
            "actions": spec_from_space(info.action_space),
            "rewards": SCALAR_FLOAT,
            "dones": SCALAR_FLOAT,
            "truncateds": SCALAR_BOOL,
            "extras": dict(self._extra_specs),
        }

    def _mirror_first_row(self) -> bool:
        """Whether storage keeps a copy of row 0 after the last row (see storage.py)."""
        return False

    def _required_bytes(self) -> int:
        mirror = self._mirror_first_row()
        return required_bytes(self._stored_specs(), self.buffer_size, self.num_envs, mirror)

    def _bulk_bytes(self) -> int:
        """The part of ``_required_bytes`` that ``storage="memmap"`` puts in files."""
        mirror = self._mirror_first_row()
        return required_bytes(self._stored_specs(), self.buffer_size, self.num_envs, mirror)

    def _stored_specs(self) -> dict[str, Any]:
        """The fields kept in packed rows: all of ``_specs`` unless a subclass stores some apart."""
        return self._specs

    def _allocate(self, packed: np.ndarray | None = None) -> dict[str, Any]:
        """Packed storage for every field (in ``packed`` if given, e.g. loaded); returns the
        per-field views ``(buffer_size, E, ...)``."""
        self._packed = PackedStorage(
            self._stored_specs(), self.buffer_size, self.num_envs, self._mirror_first_row(),
            packed=packed, zeros=functools.partial(self._placement.zeros, "packed"),
        )  # fmt: skip
        return self._views()

    @property
    def nbytes(self) -> int:
        """Bytes the buffer allocated (its capacity, not what is filled), padding included."""
        return self._packed.nbytes

    def _public(self, name: str) -> Any:
        """A view of a stored array, without the env axis for a single env."""
        tree = self._storage[name]
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
        # A lock cannot be pickled; a copy gets a lock of its own. The field views are rebuilt
        # from the storage they view (pickled apart, they would no longer share its memory).
        return {k: v for k, v in self.__dict__.items() if k not in ("_lock", "_storage")}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._lock = threading.RLock()
        self._storage = self._views()

    def _views(self) -> dict[str, Any]:
        """The per-field views ``(buffer_size, E, ...)`` of the storage (``self._storage``)."""
        return dict(self._packed.fields)

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
        """JSON-able keyword arguments with which ``cls(env, **config)`` rebuilds this buffer."""
        extra_fields = {
            name: [list(spec.shape), spec.dtype.str] for name, spec in self._extra_specs.items()
        }
        return {
            "buffer_size": self.buffer_size,
            "device": str(self._device_spec),
            "autoreset_mode": self.env_info.autoreset_mode.value,
            "extra_fields": extra_fields,
            "storage": self._placement.storage,
        }

    def _state(self) -> dict[str, Any]:
        """What changes as the buffer is used: arrays and JSON values (see persistence).

        ``storage.packed`` is the packed storage ``(E, rows, row_bytes)`` uint8 (see
        storage.py); ``storage.layout`` says where each field lives in a row (offset, dtype,
        shape), so the fields can be read back without pearll.
        """
        layout = {
            name: tree_map(lambda s: {"offset": s.offset, "dtype": s.dtype.str,
                                      "shape": list(s.shape)}, slot)
            for name, slot in self._packed.slots.items()
        }  # fmt: skip
        storage = {"packed": self._packed.packed, "layout": layout}
        return {"storage": storage, "rng": self.rng.bit_generator.state}

    def _set_state(self, state: dict[str, Any]) -> None:
        """Put back what :meth:`_state` returned (on a buffer rebuilt with :meth:`_config`)."""
        self._storage = self._allocate(state["storage"]["packed"])
        self.rng = _generator_from_state(state["rng"])

    @abstractmethod
    def reset(self) -> None:
        """Empty the buffer: fresh zeroed arrays, as after construction."""
        self._storage = self._allocate()

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


def _generator_from_state(state: dict[str, Any]) -> np.random.Generator:
    """A Generator whose bit generator (PCG64 or another numpy one) is in ``state``."""
    name = state.get("bit_generator") if isinstance(state, dict) else None
    bit_generator_class = getattr(np.random, str(name), None)
    known = isinstance(bit_generator_class, type) and issubclass(
        bit_generator_class, np.random.BitGenerator
    )
    if not known:
        raise CheckpointError(f"state.rng: not a numpy bit generator state: {name!r}")
    bit_generator = bit_generator_class()
    bit_generator.state = state
    return np.random.Generator(bit_generator)
