"""Reverb's rate limiter: a minimum size to sample and a samples-per-insert ratio with slack.

The limiter counts ``inserts`` (steps added, over all shards) and ``samples`` (transitions
handed to the learner) and keeps ``diff = inserts * samples_per_insert - samples`` inside
``[min_diff, max_diff]``, as Reverb's ``SampleToInsertRatio`` does:
``min_diff = min_size_to_sample * samples_per_insert - error_buffer`` and
``max_diff = min_size_to_sample * samples_per_insert + error_buffer``.

- A sample of n waits until at least ``min_size_to_sample`` transitions are stored and
  ``diff - n >= min_diff`` (the learner may not run ahead of the collectors).
- An insert of n waits until ``diff + n * samples_per_insert <= max_diff`` (the collectors may
  not run ahead of the learner), except that inserts never wait while the stored size (after
  the insert) is at most ``min_size_to_sample``: the buffer must be able to fill up.

``error_buffer`` must leave room for one call of each kind, or the two sides could wait for
each other forever; :class:`RateLimit` checks ``error_buffer`` against the largest insert and
sample the caller declares. A waiting call that is not released within its timeout raises
:class:`RateLimitTimeout`, saying which bound held it.

The limiter itself is plain Python; the service runs it inside its front actor (see
:mod:`pearll.distributed.service`), where blocked calls wait on an ``asyncio.Condition``.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass


class RateLimitTimeout(TimeoutError):
    """An insert or a sample waited longer than its timeout for the rate limiter."""


@dataclass(frozen=True)
class RateLimit:
    """Rate limiter settings (see the module docstring).

    Args:
        min_size_to_sample: stored transitions needed before any sample, >= 1.
        samples_per_insert: target transitions sampled per transition inserted, > 0; ``None``
            leaves the ratio free (only ``min_size_to_sample`` is enforced).
        error_buffer: the slack around the target, in samples; must be at least
            ``max(max_batch_size, max_insert * samples_per_insert)`` so neither side deadlocks.
        max_batch_size, max_insert: the largest sample and insert (in steps) callers will make,
            only used to check ``error_buffer``.
        timeout: seconds a blocked call waits before RateLimitTimeout (``None``: forever).
    """

    min_size_to_sample: int = 1
    samples_per_insert: float | None = None
    error_buffer: float = math.inf
    max_batch_size: int = 1
    max_insert: int = 1
    timeout: float | None = 60.0

    def __post_init__(self) -> None:
        if int(self.min_size_to_sample) != self.min_size_to_sample or self.min_size_to_sample < 1:
            raise ValueError(
                f"min_size_to_sample: expected an int >= 1, got {self.min_size_to_sample!r}"
            )
        spi = self.samples_per_insert
        if spi is None:
            return
        if not (math.isfinite(spi) and spi > 0):
            raise ValueError(f"samples_per_insert: expected a finite float > 0, got {spi!r}")
        needed = max(self.max_batch_size, self.max_insert * spi)
        if not self.error_buffer >= needed:
            raise ValueError(
                f"error_buffer: expected >= max(max_batch_size, max_insert * samples_per_insert)"
                f" = {needed:g} so that neither inserts nor samples can wait forever, got "
                f"{self.error_buffer!r}"
            )

    @property
    def min_diff(self) -> float:
        if self.samples_per_insert is None:
            return -math.inf
        return self.min_size_to_sample * self.samples_per_insert - self.error_buffer

    @property
    def max_diff(self) -> float:
        if self.samples_per_insert is None:
            return math.inf
        return self.min_size_to_sample * self.samples_per_insert + self.error_buffer


class RateLimiter:
    """The counters of :class:`RateLimit` and the waiting on them (one asyncio event loop)."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self.inserts = 0
        self.samples = 0
        self.size = 0  # transitions stored, as last reported by the shards
        self._changed: asyncio.Condition | None = None

    @property
    def diff(self) -> float:
        spi = self.limit.samples_per_insert or 0.0
        return self.inserts * spi - self.samples

    def can_insert(self, n: int) -> bool:
        if self.size + n <= self.limit.min_size_to_sample:
            return True
        spi = self.limit.samples_per_insert or 0.0
        return self.diff + n * spi <= self.limit.max_diff

    def can_sample(self, n: int) -> bool:
        if self.size < self.limit.min_size_to_sample:
            return False
        return self.diff - n >= self.limit.min_diff

    async def insert(self, n: int, timeout: float | None) -> None:
        """Wait until ``n`` inserts are allowed, then count them."""
        await self._wait(lambda: self.can_insert(n), timeout, f"insert of {n} steps")
        self.inserts += n
        await self._notify()

    async def sample(self, n: int, timeout: float | None) -> None:
        """Wait until a sample of ``n`` is allowed, then count it."""
        await self._wait(lambda: self.can_sample(n), timeout, f"sample of {n} transitions")
        self.samples += n
        await self._notify()

    async def refund_insert(self, n: int) -> None:
        """Uncount ``n`` inserts that were allowed but not written (the add raised)."""
        self.inserts -= n
        await self._notify()

    async def refund_sample(self, n: int) -> None:
        """Uncount a sample of ``n`` that was allowed but failed (its shards' actors died)."""
        self.samples -= n
        await self._notify()

    async def set_size(self, size: int) -> None:
        self.size = size
        await self._notify()

    def describe(self) -> str:
        limit = self.limit
        return (
            f"size={self.size} (min_size_to_sample={limit.min_size_to_sample}), "
            f"inserts={self.inserts}, samples={self.samples}, "
            f"diff=inserts*samples_per_insert-samples={self.diff:g} must stay in "
            f"[{limit.min_diff:g}, {limit.max_diff:g}]"
        )

    def _condition(self) -> asyncio.Condition:
        # Made on first use, inside the running loop (the actor's), not at construction.
        if self._changed is None:
            self._changed = asyncio.Condition()
        return self._changed

    async def _wait(self, allowed, timeout: float | None, what: str) -> None:
        changed = self._condition()
        async with changed:
            try:
                await asyncio.wait_for(changed.wait_for(allowed), timeout)
            except asyncio.TimeoutError:
                side = "learner" if what.startswith("insert") else "collectors"
                raise RateLimitTimeout(
                    f"rate limiter: {what} blocked for {timeout} s, waiting for the {side}; "
                    f"{self.describe()}"
                ) from None

    async def _notify(self) -> None:
        changed = self._condition()
        async with changed:
            changed.notify_all()
