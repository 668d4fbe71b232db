"""Rate limits shared by every API process: sliding windows (per client address, per user
on the writes that take stock, per e-mail address on login) and a per-caller query cost
budget. Counts live in Redis; the transport (`graphql_api`) decides where each applies,
and counts all of one request's limits in one round trip (`RateLimits.count`)."""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from redis.asyncio import Redis

from ratelimit.breaker import Breaker
from ratelimit.bucket import BucketStatus, CostBucket
from ratelimit.errors import RateLimitUnavailable
from ratelimit.store import Count, Counted, LimitStore
from ratelimit.windows import SlidingWindow, WindowDecision

__all__ = [
    "Breaker",
    "BucketStatus",
    "CostBucket",
    "Count",
    "Counted",
    "LimitStore",
    "RateLimitUnavailable",
    "RateLimits",
    "SlidingWindow",
    "WindowDecision",
    "build_rate_limits",
]


@dataclass(frozen=True)
class RateLimits:
    enabled: bool
    store: LimitStore
    per_ip: SlidingWindow
    per_user_write: SlidingWindow
    """Counted separately for each operation (`reserve:<user>`, `checkout:<user>`)."""
    cost: CostBucket
    _windows: dict[tuple[str, str], SlidingWindow] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def window(self, name: str, rate: str) -> SlidingWindow:
        """A further window (e.g. per account on login) on the same store, clock and breaker
        as the others, made once per name and rate: for a quota that the transport reads
        from settings."""
        key = (name, rate)
        if key not in self._windows:
            self._windows[key] = self.per_ip.sibling(name, rate)
        return self._windows[key]

    async def count(self, counts: Sequence[Count[Any]]) -> Counted:
        """One request counted in each of these limits, in order, in one round trip (see
        LimitStore.count: the first that refuses leaves the rest uncounted)."""
        return await self.store.count(counts)


def build_rate_limits(
    redis: Redis,
    *,
    enabled: bool,
    per_ip: str,
    per_user_write: str,
    cost_budget: int,
    cost_restore_rate: int,
    prefix: str = "fs:rl",
    clock: Callable[[], float] = time.time,
) -> RateLimits:
    """Every limit on `redis` (a cluster client too: each key names its hash slot)."""
    store = LimitStore(redis, clock, Breaker())  # one store, so one breaker for all of them
    return RateLimits(
        enabled=enabled,
        store=store,
        per_ip=SlidingWindow(store, "ip", per_ip, prefix),
        per_user_write=SlidingWindow(store, "user", per_user_write, prefix),
        cost=CostBucket(store, cost_budget, cost_restore_rate, prefix=f"{prefix}:cost"),
    )
