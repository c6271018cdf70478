"""The front actor of the replay service: rate limiter, sampler, loss ledger, and its recovery.

What the front knows is also known by the shards, so a front that dies is restarted by Ray and
rebuilds itself from them (:meth:`Front._rebuild`):

- every insert is counted by the front before the add that carries it returns (the shard
  waits for ``acquire_insert``), and each shard counts the inserts it wrote (``inserts``);
- each draw call tells the shard the front's sample counters as of that sample (``samples``,
  transitions handed out, and ``samples_drawn``, calls, for the beta schedule); the shards
  keep them, and write them into their checkpoints;
- each loss the front records is also sent to the shard it concerns, which keeps it.

A restarted front finds the shards by name, asks each for that ledger, and resumes: per-shard
inserts are the shards', the limiter's inserts are theirs plus what the losses took, samples
are the largest any shard heard of, masses are reported afresh. A service started on an
existing ``checkpoint_dir`` resumes the same way from the checkpoints (the first start of
each shard adds its checkpointed inserts and samples), so its rate limiter does not start
at zero inserts.

Sampling survives shard deaths: a draw that fails because its shard's actor died (or is
restarting) is not counted by the limiter (it is refunded) and the whole batch is drawn again
from the shards still alive, so it has the distribution of the buffer the live shards form; the
dead shard is reported in ``stats()["unavailable"]`` (and logged) until it starts again.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pearll.common.type_aliases import SequenceTrajectories, Trajectories
from pearll.distributed.rate_limit import RateLimit, RateLimiter
from pearll.distributed.sampling import PoolMass, merge, shard_counts

logger = logging.getLogger(__name__)
EMPTY = PoolMass(0, 0.0, np.inf)


@dataclass(frozen=True)
class ShardLoss:
    """A shard restarted from a checkpoint that lacked ``lost`` of the steps it had been given."""

    shard: int
    lost: int  # steps inserted after the checkpoint, gone with the dead actor
    inserts_before: int  # steps the front had counted for this shard when it died
    inserts_in_checkpoint: int
    size_after: int  # transitions the shard holds after the reload
    time: float  # time.time() of the report


@dataclass(frozen=True)
class ShardLedger:
    """What a shard tells a (re)started front (see the module docstring)."""

    inserts: int
    samples: int
    samples_drawn: int
    losses: tuple[ShardLoss, ...]
    mass: PoolMass


def shard_name(service: str, index: int) -> str:
    return f"pearll-replay-shard-{service}-{index:04d}"


class Front:
    """The front actor's body (see the module docstring and :mod:`pearll.distributed.service`)."""

    def __init__(
        self,
        service: str,
        num_shards: int,
        rate_limit: RateLimit,
        beta: float,
        beta_steps: int | None,
        seed: Any,
    ) -> None:
        import ray

        self.service, self.num_shards = service, num_shards
        self.limiter = RateLimiter(rate_limit)
        self.shards: list[Any] = []
        self.masses = [EMPTY] * num_shards
        self.inserts = np.zeros(num_shards, dtype=np.int64)
        self.losses: list[ShardLoss] = []
        self.started: set[int] = set()
        self.unavailable: dict[int, str] = {}
        self.rng = np.random.default_rng(seed)
        self.beta_start, self.beta_steps, self.samples_drawn = beta, beta_steps, 0
        self.prioritized = False
        context = ray.get_runtime_context()
        self._restarted = bool(getattr(context, "was_current_actor_reconstructed", False))
        self._rebuilt: asyncio.Lock | None = None

    def attach(self, shards: list[Any], prioritized: bool) -> None:
        self.shards, self.prioritized = list(shards), prioritized

    async def _ready(self) -> None:
        """On a restarted front, rebuild the state from the shards (once) before anything."""
        if not self._restarted:
            return
        if self._rebuilt is None:
            self._rebuilt = asyncio.Lock()
        async with self._rebuilt:
            if self._restarted:
                await self._rebuild()
                self._restarted = False

    async def _rebuild(self) -> None:
        import ray

        self.shards = [ray.get_actor(shard_name(self.service, i)) for i in range(self.num_shards)]
        ledgers = await asyncio.gather(*(s.ledger.remote() for s in self.shards))
        infos = await self.shards[0].info.remote()
        self.prioritized = infos.prioritized
        for index, ledger in enumerate(ledgers):
            self.inserts[index] = ledger.inserts
            self.masses[index] = ledger.mass
            self.started.add(index)
        self.losses = sorted((x for ledger in ledgers for x in ledger.losses), key=lambda x: x.time)
        self.limiter.inserts = int(self.inserts.sum()) + sum(x.lost for x in self.losses)
        self.limiter.samples = max(ledger.samples for ledger in ledgers)
        self.samples_drawn = max(ledger.samples_drawn for ledger in ledgers)
        await self.limiter.set_size(sum(m.count for m in self.masses))
        logger.warning("replay front restarted: rebuilt from %d shards", self.num_shards)

    async def acquire_insert(self, shard: int, steps: int, timeout: float | None) -> None:
        await self._ready()
        await self.limiter.insert(steps, self._timeout(timeout))
        self.inserts[shard] += steps

    async def counted_insert(self, shard: int, steps: int, mass: PoolMass) -> None:
        """Shard ``shard`` wrote ``steps`` steps the limiter could not hold (no ratio): count
        them (before the add returns to its caller) and take the shard's new mass."""
        await self._ready()
        self.inserts[shard] += steps
        self.limiter.inserts += steps
        await self.inserted(shard, mass)

    async def refund_insert(self, shard: int, steps: int) -> None:
        await self._ready()
        self.inserts[shard] -= steps
        await self.limiter.refund_insert(steps)

    async def inserted(self, shard: int, mass: PoolMass, steps: int = 0) -> None:
        """Shard ``shard``'s mass after its latest adds and priority updates, and the ``steps``
        it wrote that nothing counted yet (``exact_loss_count=False``)."""
        await self._ready()
        self.inserts[shard] += steps
        self.limiter.inserts += steps
        self.unavailable.pop(shard, None)  # it reports: it is alive
        self.masses[shard] = mass
        await self.limiter.set_size(self._size())

    async def shard_started(self, shard: int, inserts: int, samples: int, mass: PoolMass) -> None:
        """Shard ``shard`` (re)started holding ``inserts`` steps from its checkpoint (or 0).

        The first start of a shard resumes the counts (a new service on old checkpoints: its
        inserts, and the samples the checkpoint heard of, go to the limiter); any later one is
        a restart after a death, and what it lacks is recorded as lost.
        """
        await self._ready()
        if shard in self.started:
            loss = ShardLoss(
                shard, int(self.inserts[shard] - inserts), int(self.inserts[shard]), inserts,
                mass.count, time.time(),
            )  # fmt: skip
            self.losses.append(loss)
            logger.warning("replay shard %d restarted from its checkpoint: %s", shard, loss)
            if self.shards:
                self.shards[shard].record_loss.remote(loss)
        else:
            self.limiter.inserts += inserts
            self.limiter.samples = max(self.limiter.samples, samples)
        self.started.add(shard)
        self.unavailable.pop(shard, None)
        self.inserts[shard] = inserts
        await self.inserted(shard, mass)

    async def sample(self, batch_size: int, timeout: float | None) -> Trajectories:
        request = lambda shard, k, ledger: shard.draw.remote(k, *ledger)  # noqa: E731
        return await self._sample(batch_size, batch_size, timeout, request)

    async def sample_sequences(
        self, batch_size: int, length: int, burn_in: int, boundary: str, timeout: float | None
    ) -> SequenceTrajectories:
        """``batch_size`` windows; the limiter counts their learned steps, ``B * length``."""

        def request(shard: Any, k: int, ledger: tuple[int, int]) -> Any:
            return shard.draw_windows.remote(k, length, burn_in, boundary, *ledger)

        return await self._sample(batch_size, batch_size * length, timeout, request, True)

    async def _sample(
        self, batch_size: int, counted: int, timeout: float | None, request: Any, windows=False
    ) -> Any:
        await self._ready()
        await self.limiter.sample(counted, self._timeout(timeout))
        try:
            return await self._draw(batch_size, request, windows)
        except BaseException:
            await self.limiter.refund_sample(counted)  # a failed sample is not counted
            raise

    async def _draw(self, batch_size: int, request: Any, windows: bool) -> Any:
        """Split ``batch_size`` by the shards' masses, ``request(shard, k, ledger)`` each part
        (one round of parallel calls), merge; a dead shard's part is drawn again elsewhere."""
        from ray.exceptions import RayActorError

        while True:
            masses = [EMPTY if s in self.unavailable else m for s, m in enumerate(self.masses)]
            if all(m.count == 0 for m in masses) and self.unavailable:
                raise RuntimeError(
                    f"cannot sample: shards {sorted(self.unavailable)} are unavailable (their "
                    "actors died) and the others hold no transition"
                )
            counts = shard_counts(np.array([m.mass for m in masses]), batch_size, self.rng)
            drawn = [s for s in range(self.num_shards) if counts[s]]
            ledger = (self.limiter.samples, self.samples_drawn + 1)
            parts = await asyncio.gather(
                *(request(self.shards[s], int(counts[s]), ledger) for s in drawn),
                return_exceptions=True,
            )
            results = dict(zip(drawn, parts, strict=True))
            failed = {s: p for s, p in results.items() if isinstance(p, BaseException)}
            if not failed:
                break
            for shard, error in failed.items():
                if not isinstance(error, RayActorError):
                    raise error
                self._unavailable(shard, error)
        beta = self._next_beta() if self.prioritized else None
        smallest = min((m.min_mass for m in masses), default=np.inf)
        return merge(results, self.num_shards, self.rng, beta, smallest, windows)

    def _unavailable(self, shard: int, error: BaseException) -> None:
        """Leave ``shard`` out of sampling until it (re)starts: its actor died."""
        self.unavailable[shard] = type(error).__name__
        self.masses[shard] = EMPTY
        self.limiter.size = self._size()
        logger.warning("replay shard %d is unavailable (%s): sampling from the others", shard,
                       type(error).__name__)  # fmt: skip

    def _size(self) -> int:
        return sum(m.count for s, m in enumerate(self.masses) if s not in self.unavailable)

    def _next_beta(self) -> float:
        """Global beta: the schedule of PrioritizedReplayBuffer, counted in service samples."""
        self.samples_drawn += 1
        if self.beta_steps is None:
            return self.beta_start
        progress = min(1.0, (self.samples_drawn - 1) / self.beta_steps)
        return self.beta_start + (1.0 - self.beta_start) * progress

    def _timeout(self, timeout: float | None) -> float | None:
        return self.limiter.limit.timeout if timeout is None else timeout

    async def stats(self) -> dict[str, Any]:
        await self._ready()
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
            "unavailable": dict(self.unavailable),
        }

    async def get_losses(self) -> list[ShardLoss]:
        await self._ready()
        return list(self.losses)
