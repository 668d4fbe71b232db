"""A circuit breaker in front of the limits' store. A Redis that is down makes the client
retry with backoff (seconds per call); after one failure the limits answer "unavailable"
at once for a short cool-down instead of making every request wait that out again."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from redis.exceptions import RedisError

from ratelimit.errors import RateLimitUnavailable

# As long as the pool waits for a connection: under a stampede a slow answer is load, and
# the writes it guards must not fail for that alone.
STORE_TIMEOUT_SECONDS = 5.0
COOL_DOWN_SECONDS = 2.0


class Breaker:
    def __init__(
        self,
        cool_down: float = COOL_DOWN_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cool_down = cool_down
        self._clock = clock
        self._open_until = 0.0

    @property
    def is_open(self) -> bool:
        return self._clock() < self._open_until

    @asynccontextmanager
    async def guard(self) -> AsyncIterator[None]:
        """Run one call to the store: bounded in time, and refused at once while open."""
        if self.is_open:
            raise RateLimitUnavailable("the store failed moments ago")
        try:
            async with asyncio.timeout(STORE_TIMEOUT_SECONDS):
                yield
        except (RedisError, OSError, TimeoutError) as exc:
            self._open_until = self._clock() + self.cool_down
            raise RateLimitUnavailable(str(exc) or type(exc).__name__) from exc
