"""Waiting, bounded, for a condition that other processes make true on their own ticks
(background loops, servers starting, log lines, subscriptions being dropped): poll it, fail
with a message at the deadline. The one way tests wait: `wait_until` in synchronous code,
`eventually` in a coroutine."""

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(
    check: Callable[[], T | None],
    *,
    within: float,
    every: float,
    failure: Callable[[], str],
) -> T:
    """`check()`'s first truthy answer (so it can hand back what it found)."""
    deadline = time.monotonic() + within
    while not (found := check()):
        if time.monotonic() >= deadline:
            raise AssertionError(failure())
        time.sleep(every)  # polling a condition, bounded by the deadline
    return found


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
