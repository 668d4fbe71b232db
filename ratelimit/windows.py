"""Sliding windows, counted in Redis so every API process shares them, and turned into what
HTTP and GraphQL report (remaining, reset, retry after)."""

import math
from dataclasses import dataclass
from typing import Any

from limits import RateLimitItem, parse

from ratelimit.store import Count, LimitStore


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

    One script call per request counts it and answers the window's state (with the
    request's other limits: see ratelimit.store), and its work and memory are bounded by
    the buckets: nothing grows with the quota or the traffic (the `limits` library's moving
    window, used before, keeps one list entry per counted request and walks that list on
    every call)."""

    def __init__(self, store: LimitStore, name: str, rate: str, prefix: str = "fs:rl") -> None:
        self.name = name
        self._store = store
        self.item: RateLimitItem = parse(rate)
        self._prefix = prefix
        window_ms = self.window_seconds * 1000
        self._width_ms = math.ceil(window_ms / BUCKETS_PER_WINDOW)
        self._buckets = math.ceil(window_ms / self._width_ms)

    def sibling(self, name: str, rate: str) -> "SlidingWindow":
        """Another window on the same store (its clock and breaker)."""
        return SlidingWindow(self._store, name, rate, self._prefix)

    @property
    def limit(self) -> int:
        return self.item.amount

    @property
    def window_seconds(self) -> int:
        return self.item.get_expiry()

    def count(self, identity: str, slot: str | None = None) -> Count[WindowDecision]:
        """One request of `identity`, to count with LimitStore.count. `slot` is the key's
        hash tag, for a cluster: limits of one request counted under the same tag share one
        round trip there too. By default the identity is its own tag."""
        where = f"{self._prefix}:{self.name}:{self.limit}/{self.window_seconds}"
        key = f"{where}:{{{identity}}}" if slot is None else f"{where}:{identity}:{{{slot}}}"
        return Count(key, "window", (self._width_ms, self._buckets, self.limit), self._read)

    async def hit(self, identity: str, slot: str | None = None) -> WindowDecision:
        """Count one request for `identity`, unless its window is full."""
        count = self.count(identity, slot)
        decision = (await self._store.count([count])).of(count)
        assert decision is not None
        return decision

    def _read(self, allowed: int, counted: Any, leaves_ms: Any, now: float) -> WindowDecision:
        leaves = int(leaves_ms) / 1000
        return WindowDecision(
            allowed=bool(allowed),
            limit=self.limit,
            window_seconds=self.window_seconds,
            remaining=max(0, self.limit - int(counted)),
            # Whole seconds, rounded up: the oldest request has left once they have passed.
            reset_after=max(0, math.ceil(leaves - now)) if leaves else 0,
        )
