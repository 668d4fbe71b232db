"""The query cost budget: a leaky bucket per caller in Redis, as large public GraphQL APIs
keep (Shopify's calculated query costs). Each query takes its cost from the bucket; the
bucket refills at a fixed rate up to its capacity. One Lua script, so any number of API
processes share a bucket without races."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from redis.asyncio import Redis

from ratelimit.breaker import Breaker


@dataclass(frozen=True)
class BucketStatus:
    allowed: bool
    capacity: int
    available: int
    """Whole points left after this query (rounded down)."""
    restore_rate: int
    """Points per second."""
    retry_after: int
    """Seconds until the bucket holds the refused cost (0 when allowed)."""


class CostBucket:
    def __init__(
        self,
        redis: Redis,
        capacity: int,
        restore_rate: int,
        *,
        prefix: str = "fs:cost",
        clock: Callable[[], float] = time.time,
        breaker: Breaker | None = None,
    ) -> None:
        self.capacity = capacity
        self._breaker = breaker or Breaker()
        self.restore_rate = restore_rate
        self._prefix = prefix
        self._clock = clock
        source = (resources.files("ratelimit") / "lua" / "cost_bucket.lua").read_text()
        self._script = redis.register_script(source)

    async def take(self, identity: str, cost: int) -> BucketStatus:
        """Take `cost` points from `identity`'s bucket, or nothing if it holds fewer."""
        # The identity is the hash tag, so the bucket lives on one cluster slot.
        key = f"{self._prefix}:{{{identity}}}"
        now_ms = int(self._clock() * 1000)
        async with self._breaker.guard():
            allowed, level, wait_ms = await self._script(
                keys=[key], args=[self.capacity, self.restore_rate, cost, now_ms]
            )
        return BucketStatus(
            allowed=bool(allowed),
            capacity=self.capacity,
            available=math.floor(float(level)),
            restore_rate=self.restore_rate,
            retry_after=math.ceil(int(wait_ms) / 1000),
        )
