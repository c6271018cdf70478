"""The replay service: N shard actors, one front actor, and the handle everyone holds.

Topology
--------
- **Shards** (:mod:`pearll.distributed.shard`): one Ray actor per shard, each holding a pearll
  buffer. Collectors add straight to their shard, so insert traffic never funnels through one
  process.
- **The front** (:class:`Front`, one async actor): the rate limiter, the sampler and the ledger
  of losses. The rate limiter lives here because its counts are global (Reverb's ratio is per
  table, and the service is one table): every add asks the front for permission before it
  writes (one small round trip per add, not per step), every sample goes through the front.
  Each shard tells the front its mass (count, priority total, smallest priority) within
  ``REPORT_DELAY`` (10 ms) of every add and priority update, one way (one message for all that
  happened in the delay); a sample splits the batch between shards by those masses
  (multinomial), has each shard draw its part (one round of parallel calls), merges, shuffles
  and weighs globally (see :mod:`pearll.distributed.sampling` for why this is the distribution
  of one global buffer). The split follows the masses as last reported: an add still in flight
  is not in it.
- **The handle** (:class:`ReplayService`): a small picklable object holding the actor handles;
  pass it to collector actors and the learner.

Fault tolerance
---------------
With ``checkpoint_dir``, each shard checkpoints every ``checkpoint_every`` inserted steps (and
on ``service.checkpoint()``) in pearll's persistence format (see
:mod:`pearll.distributed.checkpoint`). Shard actors are created with ``max_restarts``: when one
dies, Ray restarts it, the new actor loads its latest checkpoint and tells the front how many
inserts that checkpoint holds; the front, which counted every insert it allowed, records the
difference as a :class:`ShardLoss` (``service.losses()``) and warns. With a samples-per-insert
ratio every insert is counted before it is written, so ``lost`` is exact; without one, inserts
are counted from the shards' reports, and a shard that dies within ``REPORT_DELAY`` of an add
takes that add's count with it (``lost`` is then short by those steps). Calls that were running on
the shard when it died fail (Ray's ``ActorDiedError``/``ActorUnavailableError``, no automatic
retry: a retried add could be written twice); calls made while it restarts wait for it. A
collector that dies loses only the steps it had not sent. The front is not restarted: it is
small and holds only counters, but losing it ends the service.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from dataclasses import dataclass
from typing import Any

import numpy as np

from pearll.buffers.core.tree import tree_map
from pearll.buffers.reading.output import convert
from pearll.common.type_aliases import Trajectories
from pearll.distributed.checkpoint import CheckpointInfo, supports_checkpoints
from pearll.distributed.rate_limit import RateLimit, RateLimiter
from pearll.distributed.sampling import PoolMass, merge, shard_counts, split_indices
from pearll.distributed.shard import Shard, ShardInfo

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ShardLoss:
    """A shard restarted from a checkpoint that lacked ``lost`` of the steps it had been given."""

    shard: int
    lost: int  # steps inserted after the checkpoint, gone with the dead actor
    inserts_before: int  # steps the front had counted for this shard when it died
    inserts_in_checkpoint: int
    size_after: int  # transitions the shard holds after the reload
    time: float  # time.time() of the report


class Front:
    """The front actor's body: rate limiter, sampler, loss ledger (see the module docstring)."""

    def __init__(
        self, num_shards: int, rate_limit: RateLimit, beta: float, beta_steps: int | None, seed
    ) -> None:
        self.limiter = RateLimiter(rate_limit)
        self.num_shards = num_shards
        self.shards: list[Any] = []
        self.masses = [PoolMass(0, 0.0, np.inf)] * num_shards
        self.inserts = np.zeros(num_shards, dtype=np.int64)
        self.losses: list[ShardLoss] = []
        self.started: set[int] = set()
        self.rng = np.random.default_rng(seed)
        self.beta_start, self.beta_steps, self.samples_drawn = beta, beta_steps, 0
        self.prioritized = False

    def attach(self, shards: list[Any], prioritized: bool) -> None:
        self.shards, self.prioritized = list(shards), prioritized

    async def acquire_insert(self, shard: int, steps: int, timeout: float | None) -> None:
        await self.limiter.insert(steps, self._timeout(timeout))
        self.inserts[shard] += steps

    async def refund_insert(self, shard: int, steps: int) -> None:
        self.inserts[shard] -= steps
        await self.limiter.refund_insert(steps)

    async def inserted(self, shard: int, steps: int, mass: PoolMass) -> None:
        """Shard ``shard`` wrote ``steps`` steps not counted by ``acquire_insert``; its mass."""
        self.inserts[shard] += steps
        self.limiter.inserts += steps
        self.masses[shard] = mass
        await self.limiter.set_size(sum(m.count for m in self.masses))

    async def shard_started(self, shard: int, inserts: int, mass: PoolMass) -> None:
        """Shard ``shard`` (re)started holding ``inserts`` steps from its checkpoint (or 0).

        The first start of a shard resumes the counts (a new service on old checkpoints); any
        later one is a restart after a death, and what it lacks is recorded as lost.
        """
        if shard in self.started:
            loss = ShardLoss(
                shard, int(self.inserts[shard] - inserts), int(self.inserts[shard]), inserts,
                mass.count, time.time(),
            )  # fmt: skip
            self.losses.append(loss)
            logger.warning("replay shard %d restarted from its checkpoint: %s", shard, loss)
        self.started.add(shard)
        self.inserts[shard] = inserts
        await self.inserted(shard, 0, mass)

    async def sample(self, batch_size: int, timeout: float | None) -> Trajectories:
        await self.limiter.sample(batch_size, self._timeout(timeout))
        masses = list(self.masses)
        counts = shard_counts(np.array([m.mass for m in masses]), batch_size, self.rng)
        drawn = [s for s in range(self.num_shards) if counts[s]]
        parts = await asyncio.gather(*(self.shards[s].draw.remote(int(counts[s])) for s in drawn))
        beta = self._next_beta() if self.prioritized else None
        smallest = min((m.min_mass for m in masses), default=np.inf)
        draws = dict(zip(drawn, parts, strict=True))
        return merge(draws, self.num_shards, self.rng, beta, smallest)

    def _next_beta(self) -> float:
        """Global beta: the schedule of PrioritizedReplayBuffer, counted in service samples."""
        if self.beta_steps is None:
            return self.beta_start
        progress = min(1.0, self.samples_drawn / self.beta_steps)
        self.samples_drawn += 1
        return self.beta_start + (1.0 - self.beta_start) * progress

    def _timeout(self, timeout: float | None) -> float | None:
        return self.limiter.limit.timeout if timeout is None else timeout

    def stats(self) -> dict[str, Any]:
        limiter = self.limiter
        return {
            "sizes": [m.count for m in self.masses],
            "inserts": self.inserts.tolist(),
            "limiter": {
                "inserts": limiter.inserts,
                "samples": limiter.samples,
                "size": limiter.size,
            },
            "losses": list(self.losses),
        }

    def get_losses(self) -> list[ShardLoss]:
        return list(self.losses)


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
        seed: int | None = None,
        **buffer_kwargs: Any,
    ) -> ReplayService:
        """Start ``num_shards`` shards, each ``buffer_cls(env, buffer_size, **buffer_kwargs)``.

        ``env`` is what the shard actors build their buffers from, so it must pickle: an
        :class:`~pearll.distributed.shard.EnvSpaces` (``EnvSpaces.of(env)``), or a function of
        no arguments that returns an env (called inside each actor). ``buffer_size`` is per
        shard. ``seed`` seeds the front and, through ``[seed, shard]``, each shard's buffer.
        ``max_restarts`` is Ray's for the shard actors (-1: always restart). Needs Ray running
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
        front_name = f"pearll-replay-front-{uuid.uuid4().hex}"
        front = (
            ray.remote(Front)
            .options(num_cpus=0, max_concurrency=1000, name=front_name)
            .remote(num_shards, rate_limit, beta, beta_steps, seed)
        )
        shard_actor = ray.remote(Shard).options(
            num_cpus=0, max_restarts=max_restarts, max_task_retries=0, max_concurrency=1000
        )
        directory = None if checkpoint_dir is None else str(checkpoint_dir)
        shards = [
            shard_actor.remote(
                index,
                buffer_cls,
                env,
                {"buffer_size": buffer_size, **buffer_kwargs, "seed": [seed or 0, index]},
                front_name,
                directory,
                checkpoint_every,
                rate_limit.timeout,
                rate_limit.samples_per_insert is not None,
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
        batch = _ray().get(self.sample_async(batch_size, timeout))
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
        ray = _ray()
        ray.get([shard.report.remote() for shard in self.shards])

    def losses(self) -> list[ShardLoss]:
        """Every shard restart so far and the steps it lost (empty if none)."""
        return _ray().get(self.front.get_losses.remote())

    def stats(self) -> dict[str, Any]:
        """Sizes, insert counts, limiter counters and losses, as the front sees them.

        Shards report after each write with a one-way message, so a count may lag an add that
        has just returned; :meth:`sync` first for exact figures.
        """
        return _ray().get(self.front.stats.remote())

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
