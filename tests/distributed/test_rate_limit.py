"""The rate limiter's rules (Reverb's SampleToInsertRatio) and its waiting, without Ray."""

from __future__ import annotations

import asyncio

import pytest

from pearll.distributed.rate_limit import RateLimit, RateLimiter, RateLimitTimeout


def limiter(**kwargs) -> RateLimiter:
    return RateLimiter(RateLimit(**kwargs))


def test_samples_wait_for_min_size_and_inserts_are_free_until_then():
    rl = limiter(min_size_to_sample=10, samples_per_insert=1.0, error_buffer=4, max_insert=4,
                 max_batch_size=4)  # fmt: skip
    assert not rl.can_sample(1)
    assert rl.can_insert(10)  # the buffer must be able to fill up whatever the ratio says
    rl.inserts = rl.size = 10
    assert rl.can_sample(4)


def test_ratio_bounds_with_error_buffer():
    # diff = inserts * 2 - samples must stay in [10 * 2 - 6, 10 * 2 + 6] = [14, 26].
    rl = limiter(min_size_to_sample=10, samples_per_insert=2.0, error_buffer=6, max_insert=3,
                 max_batch_size=6)  # fmt: skip
    rl.inserts = rl.size = 13  # diff 26: at the top
    assert not rl.can_insert(1)
    assert rl.can_sample(6) and not rl.can_sample(13)
    rl.samples = 2  # diff 24
    assert rl.can_insert(1) and not rl.can_insert(2)
    rl.samples = 12  # diff 14: at the bottom
    assert not rl.can_sample(1)


def test_free_ratio_only_checks_min_size():
    rl = limiter(min_size_to_sample=3)
    rl.inserts = rl.size = 2
    assert rl.can_insert(10**6) and not rl.can_sample(1)
    rl.size = 3
    assert rl.can_sample(10**6)


@pytest.mark.parametrize("error_buffer", [1.0, 7.9])
def test_error_buffer_too_small_for_the_declared_calls_is_refused(error_buffer):
    with pytest.raises(ValueError, match="error_buffer"):
        RateLimit(10, samples_per_insert=2.0, error_buffer=error_buffer, max_insert=4)


@pytest.mark.parametrize(
    "kwargs", [{"min_size_to_sample": 0}, {"samples_per_insert": 0.0}, {"samples_per_insert": -1}]
)
def test_bad_settings_are_refused(kwargs):
    with pytest.raises(ValueError):
        RateLimit(**kwargs)


def test_blocked_sample_is_released_by_inserts_and_blocked_insert_by_samples():
    async def scenario():
        rl = limiter(min_size_to_sample=4, samples_per_insert=1.0, error_buffer=4,
                     max_insert=2, max_batch_size=4)  # fmt: skip
        sample = asyncio.create_task(rl.sample(4, timeout=5))
        await asyncio.sleep(0.05)
        assert not sample.done()
        await rl.insert(4, timeout=1)
        await rl.set_size(4)
        await asyncio.wait_for(sample, 1)
        for _ in range(4):  # diff = inserts - samples: 0 -> 8, the top (4 * 1 + 4)
            await rl.insert(2, timeout=1)
        insert = asyncio.create_task(rl.insert(2, timeout=5))
        await asyncio.sleep(0.05)
        assert not insert.done()
        await rl.sample(2, timeout=1)
        await asyncio.wait_for(insert, 1)
        return rl

    rl = asyncio.run(scenario())
    assert (rl.inserts, rl.samples) == (14, 6)


def test_timeout_says_what_blocked():
    async def scenario():
        rl = limiter(min_size_to_sample=5)
        await rl.sample(1, timeout=0.05)

    with pytest.raises(RateLimitTimeout, match=r"sample of 1 .* blocked .*min_size_to_sample=5"):
        asyncio.run(scenario())
