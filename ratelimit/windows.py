"""Sliding windows, counted in Redis so every API process shares them, and turned into what
HTTP and GraphQL report (remaining, reset, retry after)."""

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources

from limits import RateLimitItem, parse
from redis.asyncio import Redis

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


BUCKETS_PER_WINDOW = 60


class SlidingWindow:
    """`rate` requests (e.g. "60/minute") per identity in any window of that length, to
    within a sixtieth of it: requests are counted in 60 buckets per window (1 s buckets for
    a minute), so a counted request leaves the window between 59/60 of its length and its
    whole length after it was made, at the start of the bucket a window after its own.

    One script call per request counts it and answers the window's state, and its work and
    memory are bounded by the buckets: nothing grows with the quota or the traffic (the
    `limits` library's moving window, used before, keeps one list entry per counted request
    and walks that list on every call)."""

    def __init__(
        self,
        redis: Redis,
        name: str,
        rate: str,
        clock: Callable[[], float] = time.time,
        breaker: Breaker | None = None,
        prefix: str = "fs:rl",
    ) -> None:
        self.name = name
        self._redis = redis
        self._breaker = breaker or Breaker()
        self.item: RateLimitItem = parse(rate)
        self._clock = clock
        self._prefix = prefix
        window_ms = self.window_seconds * 1000
        self._width_ms = math.ceil(window_ms / BUCKETS_PER_WINDOW)
        self._buckets = math.ceil(window_ms / self._width_ms)
        source = (resources.files("ratelimit") / "lua" / "sliding_window.lua").read_text()
        self._script = redis.register_script(source)

    def sibling(self, name: str, rate: str) -> "SlidingWindow":
        """Another window on the same store, clock and breaker."""
        return SlidingWindow(self._redis, name, rate, self._clock, self._breaker, self._prefix)

    @property
    def limit(self) -> int:
        return self.item.amount

    @property
    def window_seconds(self) -> int:
        return self.item.get_expiry()

    async def hit(self, identity: str) -> WindowDecision:
        """Count one request for `identity`, unless its window is full."""
        # The identity is the hash tag, so the window lives on one cluster slot.
        key = f"{self._prefix}:{self.name}:{self.limit}/{self.window_seconds}:{{{identity}}}"
        now = self._clock()
        async with self._breaker.guard():
            allowed, counted, leaves_ms = await self._script(
                keys=[key], args=[int(now * 1000), self._width_ms, self._buckets, self.limit]
            )
        leaves = int(leaves_ms) / 1000
        return WindowDecision(
            allowed=bool(allowed),
            limit=self.limit,
            window_seconds=self.window_seconds,
            remaining=max(0, self.limit - int(counted)),
            # Whole seconds, rounded up: the oldest request has left once they have passed.
            reset_after=max(0, math.ceil(leaves - now)) if leaves else 0,
        )
