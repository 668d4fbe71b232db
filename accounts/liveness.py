"""Whether a token's user may still act: it exists and is not disabled.

Tokens are self-contained (no database read to know who calls), so a user deleted or
disabled after logging in would keep acting until the token expires. Each process asks
MongoDB at most once per user every CHECK_SECONDS and remembers the answer that long: a
deletion or a disabling takes effect everywhere within CHECK_SECONDS. Concurrent requests
of one user share one read. While MongoDB is out of reach the last answer stands, and a
user never checked is let through on the token's signature alone (so a MongoDB outage
does not stop the Redis-only hot path)."""

import asyncio
import time
from collections.abc import Awaitable, Callable

from bson import ObjectId

from flashsale.outages import mongodb_outage

CHECK_SECONDS = 5.0
REMEMBERED_MAX = 100_000

# What a user lookup returns: None for no such user, else whether it is disabled.
Lookup = Callable[[ObjectId], Awaitable[bool | None]]


class Liveness:
    def __init__(self, lookup: Lookup, clock: Callable[[], float] = time.monotonic) -> None:
        self._lookup = lookup
        self._clock = clock
        self._known: dict[ObjectId, tuple[float, str | None]] = {}
        self._asking: dict[ObjectId, asyncio.Future[str | None]] = {}

    async def refusal(self, user_id: ObjectId) -> str | None:
        """None when the user may act, else why not: "unknown_user" or "disabled"."""
        known = self._known.get(user_id)
        if known is not None and known[0] > self._clock():
            return known[1]
        asking = self._asking.get(user_id)
        if asking is None:
            asking = asyncio.ensure_future(self._ask(user_id, known))
            self._asking[user_id] = asking
            asking.add_done_callback(lambda _: self._asking.pop(user_id, None))
        return await asyncio.shield(asking)

    async def _ask(self, user_id: ObjectId, known: tuple[float, str | None] | None) -> str | None:
        try:
            disabled = await self._lookup(user_id)
        except Exception as exc:
            if mongodb_outage(exc):
                return known[1] if known else None
            raise
        refusal = "unknown_user" if disabled is None else "disabled" if disabled else None
        if len(self._known) >= REMEMBERED_MAX:
            self._known.clear()
        self._known[user_id] = (self._clock() + CHECK_SECONDS, refusal)
        return refusal

    def forget(self, user_id: ObjectId) -> None:
        """This process changed the user: ask again next time."""
        self._known.pop(user_id, None)
