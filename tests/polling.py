"""Waiting, bounded, for a condition that other processes make true on their own ticks
(background loops, subscriptions being dropped): poll it, fail with a message at the
deadline."""

import asyncio
import time
from collections.abc import Awaitable, Callable


async def eventually(
    check: Callable[[], Awaitable[bool]],
    *,
    within: float,
    every: float,
    failure: Callable[[], str],
) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() >= deadline:
            raise AssertionError(failure())
        await asyncio.sleep(every)  # polling a condition, bounded by the deadline
