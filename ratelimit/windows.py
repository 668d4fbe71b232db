"""Sliding windows: the `limits` library's moving window, counted in Redis so every API
process shares them. The algorithm is the library's; this module names the windows and
turns its answers into what HTTP and GraphQL report (remaining, reset, retry after)."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from limits import RateLimitItem, parse
from limits.aio.strategies import MovingWindowRateLimiter

from ratelimit.breaker import Breaker


@dataclass(frozen=True)
class WindowDecision:
    allowed: bool
    limit: int
    window_seconds: int
    remaining: int
    reset_after: int
    """Whole seconds after which the oldest counted request has left the window."""

    @property
    def retry_after(self) -> int:
        return 0 if self.allowed else max(1, self.reset_after)


class SlidingWindow:
    """`rate` requests (e.g. "60/minute") per identity in any window of that length."""

    def __init__(
        self,
        limiter: MovingWindowRateLimiter,
        name: str,
        rate: str,
        clock: Callable[[], float] = time.time,
        breaker: Breaker | None = None,
    ) -> None:
        self.name = name
        self._breaker = breaker or Breaker()
        self.item: RateLimitItem = parse(rate)
        self._limiter = limiter
        self._clock = clock

    def sibling(self, name: str, rate: str) -> "SlidingWindow":
        """Another window on the same store, clock and breaker."""
        return SlidingWindow(self._limiter, name, rate, self._clock, self._breaker)

    @property
    def limit(self) -> int:
        return self.item.amount

    @property
    def window_seconds(self) -> int:
        return self.item.get_expiry()

    async def hit(self, identity: str) -> WindowDecision:
        """Count one request for `identity`, unless its window is full."""
        async with self._breaker.guard():
            allowed = await self._limiter.hit(self.item, self.name, identity)
            stats = await self._limiter.get_window_stats(self.item, self.name, identity)
        return WindowDecision(
            allowed=allowed,
            limit=self.limit,
            window_seconds=self.window_seconds,
            remaining=max(0, stats.remaining),
            # A request exactly a window old still counts, so the slot frees just after.
            reset_after=max(0, math.floor(stats.reset_time - self._clock()) + 1),
        )
