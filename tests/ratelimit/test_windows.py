"""The sliding window over real Redis: counts shared by every client of the store, and a
window that slides (time moved by hand)."""

import asyncio
import uuid

from ratelimit import RateLimits
from services import Services
from tests.conftest import FrozenTime, rate_limited


def _limits(services: Services, frozen: FrozenTime, rate: str) -> RateLimits:
    return rate_limited(services, frozen, rate_limit_per_ip=rate).rate_limits


async def test_the_window_refuses_past_its_quota_and_says_when_to_retry(
    services: Services, frozen_time: FrozenTime
) -> None:
    window = _limits(services, frozen_time, "3/minute").per_ip
    decisions = []
    for _ in range(3):
        decisions.append(await window.hit("10.0.0.1"))
        frozen_time.advance(10)
    assert [d.allowed for d in decisions] == [True, True, True]
    assert [d.remaining for d in decisions] == [2, 1, 0]

    refused = await window.hit("10.0.0.1")  # at t=30: the first hit leaves at t=60
    assert not refused.allowed
    assert (refused.remaining, refused.retry_after, refused.reset_after) == (0, 30, 30)
    assert (refused.limit, refused.window_seconds) == (3, 60)


async def test_the_window_slides_rather_than_resetting_at_the_minute(
    services: Services, frozen_time: FrozenTime
) -> None:
    window = _limits(services, frozen_time, "3/minute").per_ip
    for _ in range(3):  # hits at t=0, 20, 40
        assert (await window.hit("10.0.0.2")).allowed
        frozen_time.advance(20)

    frozen_time.advance(0.5)  # t=60.5: only the hit at t=0 has left the window
    assert (await window.hit("10.0.0.2")).allowed
    again = await window.hit("10.0.0.2")
    assert not again.allowed
    assert again.retry_after == 20  # the hit at t=20 leaves at t=80

    frozen_time.advance(20)  # t=80.5
    assert (await window.hit("10.0.0.2")).allowed


async def test_identities_are_counted_apart(services: Services, frozen_time: FrozenTime) -> None:
    window = _limits(services, frozen_time, "1/minute").per_ip
    assert (await window.hit("10.0.0.3")).allowed
    assert not (await window.hit("10.0.0.3")).allowed
    assert (await window.hit("10.0.0.4")).allowed


async def test_concurrent_hits_never_exceed_the_quota(
    services: Services, frozen_time: FrozenTime
) -> None:
    # Two limiters built apart (as two processes build theirs) over the same keys.
    prefix = f"fs:test:{uuid.uuid4().hex}"
    windows = [
        rate_limited(
            services, frozen_time, prefix, rate_limit_per_ip="25/minute"
        ).rate_limits.per_ip
        for _ in range(2)
    ]
    decisions = await asyncio.gather(*(windows[i % 2].hit("10.0.0.5") for i in range(200)))
    assert sum(d.allowed for d in decisions) == 25
    assert sorted(d.remaining for d in decisions if d.allowed)[:1] == [0]


async def test_a_window_keeps_no_more_than_its_buckets_whatever_the_quota_and_traffic(
    services: Services, frozen_time: FrozenTime
) -> None:
    """The per-request work and the memory of a window are bounded by its 60 buckets: 3,000
    requests over five minutes under a quota of a million leave at most 61 fields (the
    `limits` moving window kept one list entry per request, and walked it every call)."""
    prefix = f"fs:test:{uuid.uuid4().hex}"
    window = rate_limited(
        services, frozen_time, prefix, rate_limit_per_ip="1000000/minute"
    ).rate_limits.per_ip
    for n in range(3_000):
        assert (await window.hit("10.0.0.9")).allowed
        frozen_time.advance(0.1)
        if n % 500 == 0:
            keys = [key async for key in services.redis.scan_iter(match=f"{prefix}:*")]
            assert len(keys) == 1
            assert await services.redis.hlen(keys[0]) <= 61
    decision = await window.hit("10.0.0.9")
    # What is counted is the last minute's requests (about 600) and this one.
    assert 1_000_000 - 602 <= decision.remaining <= 1_000_000 - 590
