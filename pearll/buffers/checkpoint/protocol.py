"""What a buffer offers to be saved and loaded, as a Protocol, so checkpoint code imports no buffer.

The three methods are described in :mod:`pearll.buffers.persistence`; ``_lock`` is held while a
save captures the state, ``env_info`` describes the env the buffer serves.
"""

from __future__ import annotations

import inspect
from contextvars import ContextVar
from typing import Any, Protocol

import numpy as np

from pearll.buffers.core.env_info import EnvInfo
from pearll.buffers.errors import CheckpointError


class Checkpointable(Protocol):
    """A buffer as checkpoints see it (BaseBuffer and its subclasses are ones)."""

    env_info: EnvInfo
    _lock: Any  # a context manager (threading.RLock)

    def _config(self) -> dict[str, Any]: ...

    def _state(self) -> dict[str, Any]: ...

    def _set_state(self, state: dict[str, Any]) -> None: ...


class AnyLength(np.ndarray):
    """A ``_state()`` array whose first axis varies between buffers of one configuration (e.g.
    compressed frames joined into one array): ``load`` checks its dtype and its other axes.

    Make one with ``array.view(AnyLength)``; it is saved and loaded as a plain array.
    """


_rebuilding: ContextVar[bool] = ContextVar("pearll_rebuilding_from_checkpoint", default=False)


def rebuilding() -> bool:
    """True while ``load`` runs a buffer's constructor: its arrays will come from the checkpoint."""
    return _rebuilding.get()


def keywords_taken(cls: type) -> set[str] | None:
    """The keyword arguments ``cls(env, ...)`` accepts; None if it takes any (``**kwargs``)."""
    parameters = inspect.signature(cls.__init__).parameters.values()
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters}


def generator_from_state(state: dict[str, Any]) -> np.random.Generator:
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
