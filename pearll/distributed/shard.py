"""One shard of the replay service: a Ray actor holding one pearll buffer.

The actor is asynchronous (its methods run in one asyncio loop, so buffer calls never overlap)
so that an add can wait for the rate limiter in the front without stopping this shard's
sampling. Adds to one shard are serialised by a FIFO lock: the steps of one collector land in
the order it sent them even while they wait for the limiter.

A shard is one stream of steps: its buffer's sub-envs are the sub-envs of the one collector
that writes to it (give each collector its own shard).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from pearll.distributed.checkpoint import CheckpointInfo, ShardCheckpoints
from pearll.distributed.front import ShardLedger
from pearll.distributed.rate_limit import RateLimitTimeout
from pearll.distributed.sampling import (
    PoolMass,
    ShardDraw,
    draw,
    draw_windows,
    pool_mass,
    pooled,
    prioritized,
)
from pearll.distributed.spaces import EnvSpaces, resolve_env, steps_in

__all__ = ["EnvSpaces", "Shard", "ShardInfo"]

logger = logging.getLogger(__name__)

# Seconds a shard may wait to tell the front about its adds and priority updates.
REPORT_DELAY = 0.01


@dataclass(frozen=True)
class ShardInfo:
    num_envs: int
    prioritized: bool
    buffer_class: str


class Shard:
    """The actor body (wrapped with ``ray.remote`` by the service, which owns the options)."""

    def __init__(
        self,
        index: int,
        buffer_cls: type,
        env: Any,
        buffer_kwargs: dict[str, Any],
        front_name: str,
        checkpoint_dir: str | None,
        checkpoint_every: int | None,
        default_timeout: float | None,
        limited: bool,
        exact_count: bool = True,
    ) -> None:
        import ray

        # The front by name, not by handle: an actor handle among the constructor arguments
        # would make Ray's restart of this actor depend on that argument's lineage.
        front = ray.get_actor(front_name)
        self.index, self._front, self._checkpoint_every = index, front, checkpoint_every
        # Whether the limiter can hold inserts: if not, adds skip the round trip to the front.
        self._default_timeout, self._limited = default_timeout, limited
        # Whether an add returns only once the front has counted it (see ReplayService.create).
        self._exact = exact_count
        self._env = resolve_env(env)
        self._checkpoints = (
            ShardCheckpoints(f"{checkpoint_dir}/shard-{index:04d}") if checkpoint_dir else None
        )
        restored = self._checkpoints.read(buffer_cls, self._env) if self._checkpoints else None
        self.samples = self.samples_drawn = 0  # the front's counters, as last heard
        self.losses: list[Any] = []
        self.episodes_ended = 0
        if restored is None:
            self.buffer = buffer_cls(self._env, **buffer_kwargs)
            self.inserts, self.checkpointed = 0, None
        else:
            self.buffer, self.checkpointed = restored
            self.inserts = self.checkpointed.inserts
            self.samples = self.checkpointed.samples
            self.samples_drawn = self.checkpointed.samples_drawn
            # The collector's stream goes on from where the acknowledged adds stopped, not from
            # where the checkpoint did: each running episode ends at its last stored step
            # (a truncation the learner sees), so no sampled transition spans the gap.
            try:
                self.episodes_ended = len(self.buffer.end_episodes())
            except (AttributeError, NotImplementedError) as error:  # frame stacks, for now
                logger.warning("shard %d: running episodes not ended after restore: %s", index,
                               error)  # fmt: skip
        if not pooled(self.buffer) and self.buffer.num_envs > 1:
            raise NotImplementedError(
                f"{type(self.buffer).__name__} samples with its own sample(); the service can "
                "pool it only for a single env: give each shard a single env"
            )
        # Fire and forget: the front resumes its counts, or records what a restart lost.
        front.shard_started.remote(index, self.inserts, self.samples, self.mass())
        self._adding = asyncio.Lock()
        self._unreported, self._report_due = 0, False

    def info(self) -> ShardInfo:
        buffer = self.buffer
        return ShardInfo(buffer.num_envs, prioritized(buffer), type(buffer).__name__)

    async def add_batch_trajectories(self, *args: Any, timeout: float | None, **kwargs: Any) -> int:
        rewards = args[2] if len(args) > 2 else kwargs["rewards"]
        steps = steps_in(rewards, self.buffer.env_info.is_vector, batch=True)
        return await self._add(self.buffer.add_batch_trajectories, steps, timeout, args, kwargs)

    async def add_trajectory(self, *args: Any, timeout: float | None, **kwargs: Any) -> int:
        reward = args[2] if len(args) > 2 else kwargs["reward"]
        steps = steps_in(reward, self.buffer.env_info.is_vector, batch=False)
        return await self._add(self.buffer.add_trajectory, steps, timeout, args, kwargs)

    async def _add(self, add: Any, steps: int, timeout: float | None, args, kwargs) -> int:
        """Wait for the limiter, write, count; bad input is refunded and leaves all as it was.

        ``timeout`` (default: the RateLimit's) covers the whole wait: behind earlier adds to
        this shard, then for the limiter.
        """
        timeout = self._default_timeout if timeout is None else timeout
        start = time.monotonic()
        try:
            await asyncio.wait_for(self._adding.acquire(), timeout)
        except asyncio.TimeoutError:
            raise RateLimitTimeout(
                f"insert of {steps} steps to shard {self.index} waited {timeout} s behind earlier "
                "adds to this shard (themselves held by the rate limiter: is the learner sampling?)"
            ) from None
        try:
            if self._limited:  # the limiter may hold the insert: it is counted before the write
                left = self._left(timeout, start)
                counted = self._front.acquire_insert.remote(self.index, steps, left)
                await self._counted(counted, steps)
            try:
                add(*args, **kwargs)
            except BaseException:
                if self._limited:
                    await self._refund(steps)
                raise
            self.inserts += steps
            if self._limited or not self._exact:
                self._unreported += 0 if self._limited else steps
                self._report_soon()
            else:  # one message: the count and the shard's new mass
                counted = self._front.counted_insert.remote(self.index, steps, self.mass())
            if self._due():
                self.checkpoint()
        finally:
            self._adding.release()
        if not self._limited and self._exact:
            # The add returns once the front has its count; the next add to this shard need
            # not wait for that round trip (adds pipeline).
            await self._counted(counted, steps, written=True)
        return steps

    async def _refund(self, steps: int) -> None:
        """Uncount an insert that was not written (bad input); a front that died meanwhile
        needs no refund (a restarted one counts from this shard's ``inserts``)."""
        from ray.exceptions import RayActorError

        with contextlib.suppress(RayActorError):
            await self._front.refund_insert.remote(self.index, steps)

    @staticmethod
    def _left(timeout: float | None, start: float) -> float | None:
        return None if timeout is None else max(0.0, timeout - (time.monotonic() - start))

    async def _counted(self, counted: Any, steps: int, written: bool = False) -> None:
        """Wait until the front has counted the insert, so that an add that returns is either
        in a checkpoint or counted as lost; a front that died meanwhile is a clear error, or,
        once the steps are written, no error: a restarted front counts them from this shard."""
        from ray.exceptions import RayActorError

        try:
            await counted
        except RayActorError as error:
            if written:
                return
            raise RuntimeError(
                f"the replay service's front actor died during this add of {steps} steps to "
                f"shard {self.index}; nothing was written. It restarts and rebuilds itself from "
                "the shards: retry the add"
            ) from error

    def _due(self) -> bool:
        if self._checkpoints is None or self._checkpoint_every is None:
            return False
        last = self.checkpointed.inserts if self.checkpointed else 0
        return self.inserts - last >= self._checkpoint_every

    def checkpoint(self) -> CheckpointInfo:
        if self._checkpoints is None:
            raise RuntimeError("this service was created without checkpoint_dir")
        self.checkpointed = self._checkpoints.write(
            self.buffer, self.inserts, self.samples, self.samples_drawn
        )
        return self.checkpointed

    def _report_soon(self) -> None:
        """Send the front this shard's mass (and uncounted steps) within REPORT_DELAY, one way.

        Sending a message costs the shard about as much as an add, so the reports of the adds
        and priority updates made during the delay go out as one.
        """
        if not self._report_due:
            self._report_due = True
            asyncio.get_running_loop().call_later(REPORT_DELAY, self._send_report)

    def _send_report(self) -> Any:
        self._report_due = False
        steps, self._unreported = self._unreported, 0
        return self._front.inserted.remote(self.index, self.mass(), steps)

    async def report(self) -> None:
        """Tell the front this shard's state and wait until it has it (see ``service.sync``)."""
        await self._send_report()

    def mass(self) -> PoolMass:
        return pool_mass(self.buffer)

    def draw(self, k: int, samples: int = 0, samples_drawn: int = 0) -> ShardDraw:
        """``k`` transitions; ``samples``/``samples_drawn`` are the front's counters, kept so
        that a restarted front (or a new service on this checkpoint) can resume them."""
        self.samples = max(self.samples, samples)
        self.samples_drawn = max(self.samples_drawn, samples_drawn)
        return draw(self.buffer, k)

    def draw_windows(
        self,
        k: int,
        length: int,
        burn_in: int,
        boundary: str,
        samples: int = 0,
        samples_drawn: int = 0,
    ) -> ShardDraw:
        """``k`` sequence windows built from this shard's rows (see ``sampling.draw_windows``);
        the counters as for :meth:`draw`."""
        self.samples = max(self.samples, samples)
        self.samples_drawn = max(self.samples_drawn, samples_drawn)
        return draw_windows(self.buffer, k, length, burn_in, boundary)

    def record_loss(self, loss: Any) -> None:
        self.losses.append(loss)

    def ledger(self) -> ShardLedger:
        """What a restarted front rebuilds its counts from (see :mod:`pearll.distributed.front`)."""
        return ShardLedger(
            self.inserts, self.samples, self.samples_drawn, tuple(self.losses), self.mass()
        )

    async def update_priorities(self, slots: np.ndarray, priorities: np.ndarray) -> None:
        self.buffer.update_priorities(slots, priorities)
        self._report_soon()

    def stats(self) -> dict[str, Any]:
        return {
            "size": len(self.buffer),
            "inserts": self.inserts,
            "checkpoint": self.checkpointed,
            "episodes_ended_at_restore": self.episodes_ended,
        }
