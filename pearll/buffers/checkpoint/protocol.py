"""What a buffer offers to be saved and loaded, as a Protocol, so checkpoint code imports no buffer.

The three methods are described in :mod:`pearll.buffers.persistence`; ``_lock`` is held while a
save captures the state, ``env_info`` describes the env the buffer serves.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any, Protocol

import numpy as np

from pearll.buffers.core.env_info import EnvInfo


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
