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

import uuid
from typing import Any

import numpy as np

from pearll.buffers.sampling.sequences import check_window_args
from pearll.common.arguments import check_int
from pearll.common.type_aliases import SequenceTrajectories, Trajectories
from pearll.distributed.calls import as_numpy, converted, get_sample
from pearll.distributed.calls import ray_module as _ray
from pearll.distributed.calls import retry_while_restarting as _retry_while_restarting
from pearll.distributed.checkpoint import CheckpointInfo, supports_checkpoints
from pearll.distributed.front import Front, ShardLoss, shard_name
from pearll.distributed.rate_limit import RateLimit
from pearll.distributed.sampling import route_priorities
from pearll.distributed.shard import Shard, ShardInfo

__all__ = ["Front", "ReplayService", "ShardLoss"]


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
        return converted(get_sample(self.front, self.sample_async(batch_size, timeout)), dtype,
                         device)  # fmt: skip

    def sample_async(self, batch_size: int, timeout: float | None = None) -> Any:
        """The ObjectRef of a numpy :meth:`sample` batch: start the next draw, train, then get."""
        _check_batch_size(batch_size)
        return self.front.sample.remote(batch_size, timeout)

    def sample_sequences(
        self, batch_size: int, length: int, *, burn_in: int = 0, boundary: str = "pad",
        timeout: float | None = None, dtype: str = "numpy", device: Any = "cpu",
    ) -> SequenceTrajectories:  # fmt: skip
        """``batch_size`` windows of ``burn_in + length`` steps, ``(B, T, ...)``, drawn across
        shards as ``ReplayBuffer.sample_sequences`` draws from one buffer of one env.

        Anchors are drawn over the pool of every shard (uniformly by stored count, or by
        priority with the global weights of :meth:`sample`); each shard builds the windows at
        its anchors from its own rows (a window never crosses shards), with the semantics of
        ``sample_sequences`` (docs/sequences.md). ``indices`` are global anchor slots for
        :meth:`update_priorities` (TD errors shaped ``(B, length)`` give R2D2 sequence
        priorities). The rate limiter counts ``B * length`` samples (the learned steps).
        """
        pending = self.sample_sequences_async(batch_size, length, burn_in=burn_in,
                                              boundary=boundary, timeout=timeout)  # fmt: skip
        return converted(get_sample(self.front, pending), dtype, device)

    def sample_sequences_async(
        self, batch_size: int, length: int, *, burn_in: int = 0, boundary: str = "pad",
        timeout: float | None = None,
    ) -> Any:  # fmt: skip
        """The ObjectRef of a numpy :meth:`sample_sequences` batch (arguments checked here)."""
        _check_batch_size(batch_size)
        check_window_args(length, burn_in, boundary)
        return self.front.sample_sequences.remote(
            batch_size, int(length), int(burn_in), boundary, timeout
        )

    def update_priorities(self, indices: Any, priorities: Any) -> None:
        """Send each shard the priorities of its samples (``indices`` as ``sample`` or
        ``sample_sequences`` returned; for windows ``priorities`` may be their TD errors,
        ``(B, length)``)."""
        _ray().get(self.update_priorities_async(indices, priorities))

    def update_priorities_async(self, indices: Any, priorities: Any) -> list[Any]:
        """As :meth:`update_priorities`, returning one ObjectRef per shard touched.

        Shapes and values are checked here before anything is sent; what only a shard can
        check (a TD length other than its windows', indices that are no window's) raises there.
        """
        if not self.info.prioritized:
            raise TypeError(f"{self.info.buffer_class} has no priorities to update")
        routed = route_priorities(as_numpy(indices), as_numpy(priorities), self.num_shards)
        return [
            self.shards[shard].update_priorities.remote(slots, values)
            for shard, (slots, values) in routed.items()
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


def _check_batch_size(batch_size: Any) -> None:
    # ValueError for a non-int too, as the service has always said.
    check_int(batch_size, "batch_size", 1, "a positive int", ValueError)
