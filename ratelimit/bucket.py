"""The query cost budget: a leaky bucket per caller in Redis, as large public GraphQL APIs
keep (Shopify's calculated query costs). Each query takes its cost from the bucket; the
bucket refills at a fixed rate up to its capacity. One Lua script, so any number of API
processes share a bucket without races."""

import math
from dataclasses import dataclass
from typing import Any

from ratelimit.store import Count, LimitStore


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
        self, store: LimitStore, capacity: int, restore_rate: int, *, prefix: str = "fs:cost"
    ) -> None:
        self.capacity = capacity
        self.restore_rate = restore_rate
        self._store = store
        self._prefix = prefix

    def count(self, identity: str, cost: int) -> Count[BucketStatus]:
        """`cost` points from `identity`'s bucket, to take with LimitStore.count."""
        # The identity is the hash tag, so the bucket lives on one cluster slot.
        key = f"{self._prefix}:{{{identity}}}"
        return Count(key, "bucket", (self.capacity, self.restore_rate, cost), self._read)

    async def take(self, identity: str, cost: int) -> BucketStatus:
        """Take `cost` points from `identity`'s bucket, or nothing if it holds fewer."""
        count = self.count(identity, cost)
        status = (await self._store.count([count])).of(count)
        assert status is not None
        return status

    def _read(self, allowed: int, level: Any, wait_ms: Any, now: float) -> BucketStatus:
        return BucketStatus(
            allowed=bool(allowed),
            capacity=self.capacity,
            available=math.floor(float(level)),
            restore_rate=self.restore_rate,
            retry_after=math.ceil(int(wait_ms) / 1000),
        )
