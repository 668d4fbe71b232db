"""Rate limits shared by every API process: sliding windows (per client address, per user
on the writes that take stock, per e-mail address on login) and a per-caller query cost
budget. Counts live in Redis; the transport (`graphql_api`) decides where each applies."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from redis.asyncio import Redis

from ratelimit.breaker import Breaker
from ratelimit.bucket import BucketStatus, CostBucket
from ratelimit.errors import RateLimitUnavailable
from ratelimit.windows import SlidingWindow, WindowDecision

__all__ = [
    "Breaker",
    "BucketStatus",
    "CostBucket",
    "RateLimitUnavailable",
    "RateLimits",
    "SlidingWindow",
    "WindowDecision",
    "build_rate_limits",
]


@dataclass(frozen=True)
class RateLimits:
    enabled: bool
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
    """Every limit on `redis` (a cluster client too: each key is its own hash slot)."""
    breaker = Breaker()  # one store, so one breaker for all of them
    return RateLimits(
        enabled=enabled,
        per_ip=SlidingWindow(redis, "ip", per_ip, clock, breaker, prefix),
        per_user_write=SlidingWindow(redis, "user", per_user_write, clock, breaker, prefix),
        cost=CostBucket(
            redis,
            cost_budget,
            cost_restore_rate,
            prefix=f"{prefix}:cost",
            clock=clock,
            breaker=breaker,
        ),
    )
