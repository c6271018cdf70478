"""The replay service: N shard actors, one front actor, and the handle everyone holds.

Topology
--------
- **Shards** (:mod:`pearll.distributed.shard`): one Ray actor per shard, each holding a pearll
  buffer. Collectors add straight to their shard, so insert traffic never funnels through one
  process.
- **The front** (:class:`~pearll.distributed.front.Front`, one async actor): the rate
  limiter, the sampler and the ledger of losses. The rate limiter lives here because its counts
  are global (Reverb's ratio is per table, and the service is one table): every add is counted
  by the front before it returns (one small round trip per add, not per step), every sample
  goes through the front. Each shard tells the front its mass (count, priority total, smallest
  priority) within ``REPORT_DELAY`` (10 ms) of every add and priority update, one way (one
  message for all that happened in the delay); a sample splits the batch between shards by
  those masses (multinomial), has each shard draw its part (one round of parallel calls),
  merges, shuffles and weighs globally (see :mod:`pearll.distributed.sampling` for why this is
  the distribution of one global buffer). The split follows the masses as last reported: an
  add still in flight is not in it.
- **The handle** (:class:`ReplayService`): a small picklable object holding the actor handles;
  pass it to collector actors and the learner.

Fault tolerance
---------------
With ``checkpoint_dir``, each shard checkpoints every ``checkpoint_every`` inserted steps (and
on ``service.checkpoint()``) in pearll's persistence format (see
:mod:`pearll.distributed.checkpoint`). Shard actors are created with ``max_restarts``: when one
dies, Ray restarts it, the new actor loads its latest checkpoint and tells the front how many
inserts that checkpoint holds; the front, which counted every insert it allowed, records the
difference as a :class:`ShardLoss` (``service.losses()``) and warns. Every add is counted by
the front before it returns, so ``lost`` is exact; the restored shard ends its running episodes
(a truncation), so no transition spans the gap. Calls that were running on the shard when it
died fail (Ray's ``ActorDiedError``/``ActorUnavailableError``, no automatic retry: a retried add
could be written twice); calls made while it restarts wait for it; samples go on from the live
shards. A collector that dies loses only the steps it had not sent. The front is restarted too
and rebuilds itself from the shards (see :mod:`pearll.distributed.front`).
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import numpy as np

from pearll.buffers.reading.output import convert
from pearll.common.tree import tree_map
from pearll.common.type_aliases import Trajectories
from pearll.distributed.checkpoint import CheckpointInfo, supports_checkpoints
from pearll.distributed.front import Front, ShardLoss, shard_name
from pearll.distributed.rate_limit import RateLimit
from pearll.distributed.sampling import split_indices
from pearll.distributed.shard import Shard, ShardInfo

__all__ = ["Front", "ReplayService", "ShardLoss"]

FRONT_RESTART_SECONDS = 60.0  # how long stats/losses/sync wait for a restarting actor


class ReplayService:
    """The handle of a running replay service; picklable, so collectors and learners share it.

    Build one with :meth:`create`. Adds go to one shard (``shard=i``): a shard is one stream of
    steps, so give each collector its own. ``sample`` returns ``(B, ...)`` batches drawn across
    all shards as from one buffer of one env; with PrioritizedReplayBuffer shards it returns
    :class:`~pearll.common.type_aliases.PrioritizedTrajectories` whose ``indices`` are global
    (``shard_slot * num_shards + shard``) for :meth:`update_priorities`.
    """

    def __init__(self, front: Any, shards: list[Any], info: ShardInfo) -> None:
        self.front, self.shards, self.info = front, list(shards), info

    @property
    def num_shards(self) -> int:
        return len(self.shards)

    @classmethod
    def create(
        cls,
        buffer_cls: type,
        env: Any,
        buffer_size: int,
        *,
        num_shards: int,
        rate_limit: RateLimit | None = None,
        checkpoint_dir: str | None = None,
        checkpoint_every: int | None = None,
        max_restarts: int = -1,
        exact_loss_count: bool = True,
        seed: int | None = None,
        **buffer_kwargs: Any,
    ) -> ReplayService:
        """Start ``num_shards`` shards, each ``buffer_cls(env, buffer_size, **buffer_kwargs)``.

        ``env`` is what the shard actors build their buffers from, so it must pickle: an
        :class:`~pearll.distributed.shard.EnvSpaces` (``EnvSpaces.of(env)``), or a function of
        no arguments that returns an env (called inside each actor). ``buffer_size`` is per
        shard. ``seed`` seeds the front and, through ``[seed, shard]``, each shard's buffer.
        ``max_restarts`` is Ray's for the shard actors (-1: always restart).
        ``exact_loss_count`` (default True): every add returns only once the front has counted
        it, so ``losses()`` is exact; that costs each add a round trip to the front (with a
        samples-per-insert ratio it is paid anyway). False lets adds without a ratio return at
        once, counted by the shards' reports within ``REPORT_DELAY``: faster for collectors
        with few adds in flight, but a shard that dies within that delay of an add takes the
        add's count with it (``lost`` is then short). Needs Ray running
        (``ray.init()``) or starts a local one.
        """
        ray = _ray()
        if checkpoint_dir is not None and not supports_checkpoints(buffer_cls):
            raise RuntimeError(
                f"checkpoint_dir needs {buffer_cls.__name__}.save/load (pearll persistence)"
            )
        if num_shards < 1:
            raise ValueError(f"num_shards: expected an int >= 1, got {num_shards!r}")
        rate_limit = rate_limit or RateLimit()
        beta, beta_steps = float(buffer_kwargs.get("beta", 0.4)), buffer_kwargs.get("beta_steps")
        service = uuid.uuid4().hex
        front_name = f"pearll-replay-front-{service}"
        front = (
            ray.remote(Front)
            .options(
                num_cpus=0, max_concurrency=1000, name=front_name, max_restarts=-1,
                max_task_retries=0,
            )
            .remote(service, num_shards, rate_limit, beta, beta_steps, seed)
        )  # fmt: skip
        shard_options = {"num_cpus": 0, "max_restarts": max_restarts, "max_task_retries": 0,
                         "max_concurrency": 1000}  # fmt: skip
        shard_actor = ray.remote(Shard)
        directory = None if checkpoint_dir is None else str(checkpoint_dir)
        shards = [
            shard_actor.options(**shard_options, name=shard_name(service, index)).remote(
                index,
                buffer_cls,
                env,
                {"buffer_size": buffer_size, **buffer_kwargs, "seed": [seed or 0, index]},
                front_name,
                directory,
                checkpoint_every,
                rate_limit.timeout,
                rate_limit.samples_per_insert is not None,
                exact_loss_count,
            )
            for index in range(num_shards)
        ]
        info = ray.get(shards[0].info.remote())  # raises here if the shards cannot be built
        ray.get([shard.info.remote() for shard in shards[1:]])
        ray.get(front.attach.remote(shards, info.prioritized))
        return cls(front, shards, info)

    # --- collectors -------------------------------------------------------------------------

    def add_batch_trajectories(self, shard: int, *args: Any, timeout: float | None = None, **kw):
        """``buffer.add_batch_trajectories(*args, **kw)`` on ``shard``, once the limiter allows.

        Blocks until written; returns the steps counted. Raises RateLimitTimeout after
        ``timeout`` seconds (default: the RateLimit's) and the buffer's own errors for bad input.
        """
        return _ray().get(self.add_batch_trajectories_async(shard, *args, timeout=timeout, **kw))

    def add_batch_trajectories_async(self, shard: int, *args: Any, timeout=None, **kw) -> Any:
        """As :meth:`add_batch_trajectories`, returning the Ray ObjectRef at once."""
        return self._shard(shard).add_batch_trajectories.remote(*args, timeout=timeout, **kw)

    def add_trajectory(self, shard: int, *args: Any, timeout: float | None = None, **kw) -> int:
        """``buffer.add_trajectory(*args, **kw)`` on ``shard`` (one step; prefer batches)."""
        return _ray().get(self._shard(shard).add_trajectory.remote(*args, timeout=timeout, **kw))

    # --- the learner ------------------------------------------------------------------------

    def sample(
        self, batch_size: int, timeout: float | None = None, dtype: str = "numpy", device="cpu"
    ) -> Trajectories:
        """``batch_size`` transitions, ``(B, ...)``, drawn across shards as from one buffer."""
        from ray.exceptions import RayActorError

        try:
            batch = _ray().get(self.sample_async(batch_size, timeout))
        except RayActorError as error:
            if "front" not in str(error) and self.front._actor_id.hex() not in str(error):
                raise
            raise RuntimeError(
                "the replay service's front actor died during this sample; it restarts and "
                "rebuilds itself from the shards: retry the sample"
            ) from error
        return _convert(batch, dtype, device)

    def sample_async(self, batch_size: int, timeout: float | None = None) -> Any:
        """The ObjectRef of a numpy :meth:`sample` batch: start the next draw, train, then get."""
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
        return self.front.sample.remote(batch_size, timeout)

    def update_priorities(self, indices: Any, priorities: Any) -> None:
        """Send each shard the priorities of its samples (``indices`` as ``sample`` returned)."""
        _ray().get(self.update_priorities_async(indices, priorities))

    def update_priorities_async(self, indices: Any, priorities: Any) -> list[Any]:
        """As :meth:`update_priorities`, returning one ObjectRef per shard touched."""
        if not self.info.prioritized:
            raise TypeError(f"{self.info.buffer_class} has no priorities to update")
        indices, priorities = _numpy(indices), _numpy(priorities)
        if priorities.shape not in (indices.shape, (*indices.shape, 1)):
            raise ValueError(
                f"priorities: expected shape {indices.shape} (that of indices) or "
                f"{(*indices.shape, 1)}, got {priorities.shape}"
            )
        if indices.dtype.kind not in "iu" or (indices < 0).any():
            raise ValueError("indices: expected the non-negative integers sample returned")
        indices, priorities = indices.reshape(-1), priorities.reshape(-1)
        return [
            self.shards[shard].update_priorities.remote(
                indices[where] // self.num_shards, priorities[where]
            )
            for shard, where in split_indices(indices, self.num_shards).items()
        ]

    # --- operations -------------------------------------------------------------------------

    def checkpoint(self) -> list[CheckpointInfo]:
        """Checkpoint every shard now; returns what each wrote."""
        return _ray().get([shard.checkpoint.remote() for shard in self.shards])

    def sync(self) -> None:
        """Wait until the front knows every shard's current contents.

        Shards report their contents after each add and priority update one way, so a sample
        made right after an add may split the batch by slightly older masses (every transition
        it returns is still exact). After ``sync()``, samples and ``stats`` see every add and
        priority update that had returned before it.
        """
        _retry_while_restarting(lambda: [shard.report.remote() for shard in self.shards])

    def losses(self) -> list[ShardLoss]:
        """Every shard restart so far and the steps it lost (empty if none)."""
        return _retry_while_restarting(self.front.get_losses.remote)

    def stats(self) -> dict[str, Any]:
        """Sizes, insert counts, limiter counters and losses, as the front sees them.

        Shards report after each write with a one-way message, so a count may lag an add that
        has just returned; :meth:`sync` first for exact figures.
        """
        return _retry_while_restarting(self.front.stats.remote)

    def shard_stats(self) -> list[dict[str, Any]]:
        return _ray().get([shard.stats.remote() for shard in self.shards])

    def shutdown(self) -> None:
        """Kill the shard and front actors (checkpoints on disk stay)."""
        ray = _ray()
        for actor in [*self.shards, self.front]:
            ray.kill(actor, no_restart=True)

    def _shard(self, shard: int) -> Any:
        if isinstance(shard, bool) or not isinstance(shard, int | np.integer):
            raise TypeError(f"shard: expected an int, got {type(shard).__name__}")
        if not 0 <= shard < self.num_shards:
            raise ValueError(f"shard: expected 0 <= shard < {self.num_shards}, got {shard}")
        return self.shards[shard]


def _ray() -> Any:
    try:
        import ray
    except ImportError as error:
        raise ImportError(
            "pearll.distributed needs Ray: pip install 'pearll[ray]' (or pip install ray)"
        ) from error
    return ray


def _retry_while_restarting(call: Any, seconds: float = FRONT_RESTART_SECONDS) -> Any:
    """``ray.get(call())``, called again while an actor it needs restarts (calls that only read
    or report, so repeating them is harmless)."""
    from ray.exceptions import ActorUnavailableError

    deadline = time.monotonic() + seconds
    while True:
        try:
            return _ray().get(call())
        except ActorUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _numpy(value: Any) -> np.ndarray:
    if hasattr(value, "detach"):
        value = value.detach().cpu().numpy()
    return np.asarray(value)


def _convert(batch: Trajectories, dtype: str, device: Any) -> Trajectories:
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
