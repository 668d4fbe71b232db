"""Whether a token's user may still act: it exists and is not disabled.

Tokens are self-contained (no database read to know who calls), so a user deleted or
disabled after logging in would keep acting until the token expires. Each process asks
MongoDB at most once per user every CHECK_SECONDS and remembers the answer that long: a
deletion or a disabling takes effect everywhere within CHECK_SECONDS. The users to check
are asked for together: one read for everyone who asked while the previous read was out
(at most ASK_MAX users a read), so a stampede of new shoppers costs a few reads, not one
each, and concurrent requests of one user share one answer. While MongoDB is out of reach
the last answer stands, and a user never checked is let through on the token's signature
alone (so a MongoDB outage does not stop the Redis-only hot path). Once a read has found
MongoDB out of reach, no request waits for the check until a read succeeds again: each
answers at once from what is known, while the check asks MongoDB in the background, at
most once every OUTAGE_SECONDS. A read may take LOOKUP_SECONDS: the requests waiting when
an outage begins wait that long for the check, not the client's server selection (3 s),
before their own MongoDB work; a read slower than that (MongoDB overloaded) counts as out
of reach the same way."""

import asyncio
import time
from collections.abc import Awaitable, Callable, Collection

import pymongo
from bson import ObjectId

from core.outages import mongodb_outage

CHECK_SECONDS = 5.0
LOOKUP_SECONDS = 1.0
OUTAGE_SECONDS = 2.0
REMEMBERED_MAX = 100_000
ASK_MAX = 500

# A user lookup: for those of these users that exist, whether each is disabled.
Lookup = Callable[[Collection[ObjectId]], Awaitable[dict[ObjectId, bool]]]


class Liveness:
    def __init__(self, lookup: Lookup, clock: Callable[[], float] = time.monotonic) -> None:
        self._lookup = lookup
        self._clock = clock
        self._known: dict[ObjectId, tuple[float, str | None]] = {}
        self._asking: dict[ObjectId, asyncio.Future[str | None]] = {}
        self._unasked: list[ObjectId] = []
        self._reader: asyncio.Task[None] | None = None
        self._out = False  # the last read found MongoDB out of reach
        self._out_until = float("-inf")  # and MongoDB is not asked again before then

    async def refusal(self, user_id: ObjectId) -> str | None:
        """None when the user may act, else why not: "unknown_user" or "disabled"."""
        known = self._known.get(user_id)
        if known is not None and known[0] > self._clock():
            return known[1]
        asking = self._asking.get(user_id)
        if asking is None:
            asking = asyncio.get_running_loop().create_future()
            asking.add_done_callback(_retrieved)
            self._asking[user_id] = asking
            self._unasked.append(user_id)
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read())
        if self._out:  # asked in the background; the last answer stands meanwhile
            return known[1] if known else None
        return await asyncio.shield(asking)

    async def _read(self) -> None:
        """Ask MongoDB about the users waiting, a read at a time, until none waits."""
        while self._unasked:
            users, self._unasked = self._unasked[:ASK_MAX], self._unasked[ASK_MAX:]
            if self._clock() < self._out_until:  # the previous read found MongoDB out
                self._last_answers(users)
                continue
            try:
                with pymongo.timeout(LOOKUP_SECONDS):
                    found = await self._lookup(users)
            except Exception as exc:
                if not mongodb_outage(exc):  # a bug: raised to each request that asked
                    for user_id in users:
                        self._asking.pop(user_id).set_exception(exc)
                    continue
                self._out, self._out_until = True, self._clock() + OUTAGE_SECONDS
                self._last_answers(users)
                continue
            self._out = False
            if len(self._known) + len(users) > REMEMBERED_MAX:
                self._known.clear()
            until = self._clock() + CHECK_SECONDS
            for user_id in users:
                disabled = found.get(user_id)
                refusal = "unknown_user" if disabled is None else "disabled" if disabled else None
                self._known[user_id] = (until, refusal)
                self._asking.pop(user_id).set_result(refusal)

    def _last_answers(self, users: list[ObjectId]) -> None:
        """MongoDB is out of reach: the last answer stands, a user never checked goes on
        its token."""
        for user_id in users:
            known = self._known.get(user_id)
            self._asking.pop(user_id).set_result(known[1] if known else None)

    def forget(self, user_id: ObjectId) -> None:
        """This process changed the user: ask again next time."""
        self._known.pop(user_id, None)


def _retrieved(asking: "asyncio.Future[str | None]") -> None:
    """A check nobody awaits (asked in the background during an outage) keeps its error
    quiet: the requests that awaited it got it."""
    if not asking.cancelled():
        asking.exception()
