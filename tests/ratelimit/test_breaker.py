"""The breaker in front of the limits' store (a pure unit: no store needed)."""

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError

from ratelimit import Breaker, RateLimitUnavailable
from tests.conftest import FrozenTime


async def test_after_a_failure_calls_are_refused_at_once_until_the_cool_down_ends() -> None:
    clock = FrozenTime()
    breaker = Breaker(cool_down=2.0, clock=clock.time)
    calls = []

    async def call(fail: bool) -> None:
        async with breaker.guard():
            calls.append(fail)
            if fail:
                raise RedisConnectionError("refused")

    await call(fail=False)
    with pytest.raises(RateLimitUnavailable, match="refused"):
        await call(fail=True)
    assert breaker.is_open

    clock.advance(1.9)
    with pytest.raises(RateLimitUnavailable, match="moments ago"):
        await call(fail=False)
    assert calls == [False, True]  # the store was not asked

    clock.advance(0.2)
    await call(fail=False)
    assert calls == [False, True, False]
    assert not breaker.is_open


async def test_other_errors_are_not_the_store_failing() -> None:
    breaker = Breaker()
    with pytest.raises(KeyError):
        async with breaker.guard():
            raise KeyError("a bug, not an outage")
    assert not breaker.is_open
