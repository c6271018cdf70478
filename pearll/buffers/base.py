"""BaseBuffer: the abstract API of every buffer, and its arrays allocated from the env's spaces."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

import numpy as np

from pearll.buffers.env_info import EnvInfo
from pearll.buffers.memory import check_memory
from pearll.buffers.output import resolve_device
from pearll.buffers.spaces import SCALAR_BOOL, SCALAR_FLOAT, extra_field_specs, spec_from_space
from pearll.buffers.storage import PackedStorage, required_bytes
from pearll.buffers.tree import tree_map
from pearll.common.enumerations import TrajectoryType
from pearll.common.type_aliases import Observation, Trajectories


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

    Arrays (numpy, allocated lazily by the OS, checked against available memory first):
    ``observations`` ``(buffer_size, [E,] *obs_shape)`` in the space's dtype (a dict of arrays
    for Dict spaces), ``actions`` ``(buffer_size, [E,] *act_shape)`` (``(..., 1)`` int64 for
    Discrete), ``rewards`` and ``dones`` ``(buffer_size, [E,] 1)`` float32, ``truncateds``
    ``(buffer_size, [E,] 1)`` bool, ``extras[name]`` ``(buffer_size, [E,] *shape)`` in the
    declared dtype. The env axis ``E`` is there only for vector envs.
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
    ) -> None:
        if isinstance(buffer_size, bool) or not isinstance(buffer_size, int | np.integer):
            raise TypeError(f"buffer_size: expected an int, got {type(buffer_size).__name__}")
        if buffer_size <= 0:
            raise ValueError(f"buffer_size: expected a positive int, got {buffer_size}")
        self.env_info = EnvInfo.of(env, autoreset_mode)
        self.buffer_size = int(buffer_size)
        self._device_spec = device
        self.rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng(seed)
        self._extra_specs = extra_field_specs(extra_fields)
        self._specs = self._field_specs()
        check_memory(self._required_bytes(), type(self).__name__)
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
        return required_bytes(self._specs, self.buffer_size, self.num_envs, mirror)

    def _allocate(self) -> dict[str, Any]:
        """Packed storage for every field; returns the per-field views ``(buffer_size, E, ...)``."""
        self._packed = PackedStorage(
            self._specs, self.buffer_size, self.num_envs, self._mirror_first_row()
        )
        return self._packed.fields

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
