"""The query cost budget (a leaky bucket) over real Redis, with time moved by hand."""

import asyncio
import uuid

import pytest
from redis.asyncio import Redis

from flashsale.embedded import free_port
from ratelimit import CostBucket, LimitStore, RateLimitUnavailable
from services import Services
from tests.conftest import FrozenTime


def _bucket(
    services: Services, frozen: FrozenTime, capacity: int = 100, rate: int = 10
) -> CostBucket:
    store = LimitStore(services.redis, frozen.time)
    return CostBucket(store, capacity, rate, prefix=f"fs:test:{uuid.uuid4().hex}")


async def test_takes_until_short_then_refuses_without_taking(
    services: Services, frozen_time: FrozenTime
) -> None:
    bucket = _bucket(services, frozen_time)
    first = await bucket.take("user:1", 60)
    second = await bucket.take("user:1", 30)
    assert (first.allowed, first.available, second.allowed, second.available) == (
        True,
        40,
        True,
        10,
    )

    refused = await bucket.take("user:1", 30)
    assert not refused.allowed
    assert refused.available == 10  # nothing taken
    assert refused.retry_after == 2  # 20 points short at 10 per second
    assert (refused.capacity, refused.restore_rate) == (100, 10)

    frozen_time.advance(2)
    assert (await bucket.take("user:1", 30)).available == 0


async def test_refills_at_its_rate_up_to_capacity(
    services: Services, frozen_time: FrozenTime
) -> None:
    bucket = _bucket(services, frozen_time)
    assert (await bucket.take("user:2", 100)).available == 0
    frozen_time.advance(4.5)
    assert (await bucket.take("user:2", 0)).available == 45
    frozen_time.advance(3600)
    assert (await bucket.take("user:2", 0)).available == 100


async def test_callers_have_their_own_buckets(services: Services, frozen_time: FrozenTime) -> None:
    bucket = _bucket(services, frozen_time)
    assert (await bucket.take("user:3", 100)).allowed
    assert not (await bucket.take("user:3", 1)).allowed
    assert (await bucket.take("user:4", 100)).allowed


async def test_concurrent_takes_never_overdraw(services: Services, frozen_time: FrozenTime) -> None:
    bucket = _bucket(services, frozen_time, capacity=1_000)
    results = await asyncio.gather(*(bucket.take("user:5", 7) for _ in range(300)))
    assert sum(r.allowed for r in results) == 142  # 142 * 7 = 994; a 143rd would need 1,001
    assert min(r.available for r in results) == 6


async def test_an_unreachable_store_is_reported_not_guessed(frozen_time: FrozenTime) -> None:
    dead = Redis(port=free_port(), socket_connect_timeout=0.5)
    try:
        bucket = CostBucket(LimitStore(dead, frozen_time.time), 100, 10)
        with pytest.raises(RateLimitUnavailable):
            await bucket.take("user:6", 1)
    finally:
        await dead.aclose()
