"""Calls the service handle makes: Ray imported on demand, retries while an actor restarts,
and the conversions of what it sends and gets back."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from pearll.buffers.reading.output import convert
from pearll.common.tree import tree_map

FRONT_RESTART_SECONDS = 60.0  # how long stats/losses/sync wait for a restarting actor


def ray_module() -> Any:
    """The ray module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            "pearll.distributed needs Ray: pip install 'pearll[ray]' (or pip install ray)"
        ) from error
    return ray


def retry_while_restarting(call: Any, seconds: float = FRONT_RESTART_SECONDS) -> Any:
    """``ray.get(call())``, called again while an actor it needs restarts (calls that only read
    or report, so repeating them is harmless)."""
    from ray.exceptions import ActorUnavailableError

    deadline = time.monotonic() + seconds
    while True:
        try:
            return ray_module().get(call())
        except ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def as_numpy(value: Any) -> np.ndarray:
    """``value`` as a numpy array (torch tensors detached and copied to the cpu)."""
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def get_sample(front: Any, pending: Any) -> Any:
    """``ray.get(pending)``, a sample of ``front``; its death is a clear error: retry."""
    from ray.exceptions import RayActorError

    try:
        return ray_module().get(pending)
    except RayActorError as error:
        if "front" not in str(error) and front._actor_id.hex() not in str(error):
            raise
        raise RuntimeError(
            "the replay service's front actor died during this sample; it restarts and "
            "rebuilds itself from the shards: retry the sample"
        ) from error


def converted(batch: Any, dtype: str, device: Any) -> Any:
    """A numpy batch from the front as ``dtype`` (``"numpy"`` or ``"torch"`` on ``device``)."""
    if dtype == "numpy":
        return batch
    fields = {name: getattr(batch, name) for name in batch.__dataclass_fields__}
    # Ray hands out read-only arrays; torch wants writable ones (one copy, as from a buffer).
    converted = {
        name: value
        if value is None or name == "indices"
        else convert(tree_map(np.array, value), dtype, device)
        for name, value in fields.items()
    }
    return type(batch)(**converted)
