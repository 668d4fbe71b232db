"""A product's waiting room, for sales where demand far exceeds stock.

Shoppers join from `opens_before_seconds` ahead of the sale's start (one ticket per customer
and product; joining again changes nothing). Each who joins before the start draws a
uniform random number, so at the start the queue, in draw order, is a uniformly random
permutation of them: arriving at 08:59:59 or at 08:00 gives the same chances. Those who
join later queue in arrival order, behind them. From the start, the room admits the next
shoppers while fewer than available x oversubscription hold an admission they have not
used; an admission lasts `admission_seconds`, is bound to its customer, and reserve uses it
up (in reserve.lua, atomically with the hold). When the stock is gone for good, everyone
still waiting is told SOLD_OUT.

Each change is one Lua script on the product's hash slot (lua/room_*.lua); admission steps
run in every process's background loops, and any number of them may run at once.
The room lives in Redis only: a Redis that loses its data loses the tickets (the product's
stock and sales are rebuilt from MongoDB as always).
"""

import math
import random
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, cast

from bson import ObjectId

from reservations.codec import ticket_from_redis
from reservations.errors import ProductMissing, WaitingRoomClosed
from reservations.keys import ProductKeys
from reservations.loader import StockLoader
from reservations.store import StockStore
from reservations.values import Clock, text, to_datetime

ADMIT_BATCH = 500
AdmitKind = Literal["OK", "OFF", "NOT_LOADED", "NOT_STARTED", "SOLD_OUT"]
Draw = Callable[[], float]
"""A uniform random number in [0, 1): each pre-start joiner's place in the draw."""


class TicketState(StrEnum):
    WAITING = "WAITING"
    ADMITTED = "ADMITTED"
    RESERVED = "RESERVED"
    EXPIRED = "EXPIRED"
    SOLD_OUT = "SOLD_OUT"


@dataclass(frozen=True)
class Ticket:
    """One customer's ticket as it is now."""

    product_id: ObjectId
    customer_id: ObjectId
    state: TicketState
    joined_at: datetime
    position: int | None
    """1 for the next to be admitted; None before the start (places are drawn then) and
    once no longer waiting."""
    waiting: int
    """How many wait in the queue (before the start: how many have joined so far)."""
    admissions_per_minute: float | None
    """Measured since the first admissions (which come as a burst and are left out)."""
    admission_expires_at: datetime | None
    draws_at: datetime | None
    """Before the start: when places are drawn (the sale's start)."""

    @property
    def people_ahead(self) -> int | None:
        return None if self.position is None else self.position - 1

    @property
    def estimated_wait_seconds(self) -> int | None:
        """At the measured admission rate, how long until this ticket's turn."""
        if self.position is None or not self.admissions_per_minute:
            return None
        return math.ceil(self.position / self.admissions_per_minute * 60)


@dataclass(frozen=True)
class AdmitStep:
    """What one room_admit.lua step did."""

    kind: AdmitKind
    admitted: int
    lapsed: int
    unused: int
    available: int


def _room_keys(keys: ProductKeys) -> list[str]:
    return [
        keys.stock,
        keys.room,
        keys.room_tickets,
        keys.room_queue,
        keys.room_admitted,
        keys.room_log,
    ]


class WaitingRoom:
    def __init__(
        self,
        store: StockStore,
        loader: StockLoader,
        clock: Clock,
        draw: Draw | None = None,
    ) -> None:
        self.store = store
        self.loader = loader
        self.clock = clock
        self.draw = draw or random.SystemRandom().random

    async def join(self, customer_id: ObjectId, product_id: ObjectId) -> Ticket:
        """The customer's ticket, new or the one already held (idempotent: joining again
        keeps the place, so a rejoin can never jump the line). A ticket whose admission
        lapsed or was used goes to the back. Raises WaitingRoomClosed, ProductMissing."""
        keys = ProductKeys(product_id)
        draw = repr(self._draw())  # one draw per join, used only if the ticket is new
        for attempt in range(2):
            reply = await self.store.run_script(
                "room_join",
                _room_keys(keys),
                [str(customer_id), self.clock(), draw, keys.room_ticket_events(customer_id)],
            )
            kind = text(reply[0])
            if kind == "NOT_LOADED" and attempt == 0:
                await self.loader.ensure_loaded(product_id)
                continue
            break
        if kind == "ROOM_OFF":
            raise WaitingRoomClosed("this product has no waiting room")
        if kind == "ROOM_NOT_OPEN":
            opens = to_datetime(int(reply[1])).isoformat()
            raise WaitingRoomClosed(f"the waiting room opens at {opens}")
        if kind == "SALE_ENDED":
            raise WaitingRoomClosed("the sale has ended")
        if kind == "NOT_LOADED":
            raise ProductMissing(product_id)
        ticket = await self.ticket(customer_id, product_id)
        assert ticket is not None
        return ticket

    def _draw(self) -> float:
        value = self.draw()
        if not 0.0 <= value < 1.0:
            raise ValueError(f"a draw must be in [0, 1), got {value}")
        return value

    async def ticket(self, customer_id: ObjectId, product_id: ObjectId) -> Ticket | None:
        """The customer's ticket as it is now (None: not joined), read at one instant."""
        keys = ProductKeys(product_id)
        reply = await self.store.run_script("room_view", _room_keys(keys)[:4], [str(customer_id)])
        raw = text(reply[0])
        if not raw:
            return None
        return _ticket(product_id, customer_id, [text(v) for v in reply], self.clock())

    async def admit(self, product_ids: Iterable[ObjectId], now: int | None = None) -> int:
        """One admission step for each of these products (those without a room answer at
        once), in one round trip where the client can. Returns how many were admitted."""
        steps = await self.steps(product_ids, now)
        return sum(step.admitted for step in steps)

    async def steps(
        self, product_ids: Iterable[ObjectId], now: int | None = None
    ) -> list[AdmitStep]:
        at = self.clock() if now is None else now
        calls: list[tuple[list[str], list[Any]]] = []
        for product_id in product_ids:
            keys = ProductKeys(product_id)
            calls.append((_room_keys(keys), [at, ADMIT_BATCH, keys.room_events]))
        if not calls:
            return []
        replies = await self.store.run_script_many("room_admit", calls)
        return [
            AdmitStep(cast(AdmitKind, text(r[0])), int(r[1]), int(r[2]), int(r[3]), int(r[4]))
            for r in replies
        ]


def _ticket(product_id: ObjectId, customer_id: ObjectId, reply: list[str], now: int) -> Ticket:
    record = ticket_from_redis(reply[0])
    rank, queued = int(reply[1]), int(reply[2])
    soldout, admits, first, burst = reply[4:8]
    starts = int(reply[9])
    state = TicketState(record.state) if record.state != "ADMITTED" else TicketState.ADMITTED
    if state is TicketState.ADMITTED and record.deadline_ms <= now:
        state = TicketState.EXPIRED  # lapsed; the next admission step records it
    if state is TicketState.WAITING and soldout:
        state = TicketState.SOLD_OUT
    before_start = starts >= 0 and now < starts
    rate = None
    measured = int(admits) - int(burst)
    if first and measured > 0 and now > int(first):
        rate = measured / ((now - int(first)) / 60_000)
    return Ticket(
        product_id=product_id,
        customer_id=customer_id,
        state=state,
        joined_at=to_datetime(record.joined_ms),
        position=rank + 1
        if state is TicketState.WAITING and rank >= 0 and not before_start
        else None,
        waiting=queued,
        admissions_per_minute=rate,
        admission_expires_at=to_datetime(record.deadline_ms)
        if state is TicketState.ADMITTED
        else None,
        draws_at=to_datetime(starts) if before_start else None,
    )
