"""Live feeds for subscribers: what a product's stock is now, then every change to it; a
customer's holds as they change."""

from collections.abc import AsyncGenerator, Awaitable, Callable, Iterable

from bson import ObjectId

from core.errors import InvalidInput
from models.common import utcnow
from reservations.events import (
    EventHub,
    HoldChange,
    StockChange,
    customer_channel,
    stock_channel,
)
from reservations.keys import ProductKeys
from reservations.values import StockCounters
from reservations.waiting_room import Ticket

TicketRead = Callable[[ObjectId, ObjectId], Awaitable[Ticket | None]]
Counters = Callable[[Iterable[ObjectId]], Awaitable[dict[ObjectId, StockCounters]]]


async def stock_feed(
    events: EventHub, counters: Counters, product_ids: list[ObjectId], field: str
) -> AsyncGenerator[StockChange, None]:
    """These products' stock: first as it is now, one change per product in the order
    given, then every change as it is published, wherever it was made. The snapshot is read
    after subscribing, so no change falls between it and the feed (one may be seen twice).
    A product that does not exist is InvalidInput on `field`. Close the iterator (aclosing)
    to leave the channels at once."""
    channels = {stock_channel(product_id): product_id for product_id in product_ids}
    async with events.subscribe(channels) as subscription:
        now_counters = await counters(product_ids)
        unknown = [str(product_id) for product_id in product_ids if product_id not in now_counters]
        if unknown:
            raise InvalidInput(field, f"no such product: {', '.join(unknown)}")
        now = utcnow()
        for product_id in product_ids:
            yield StockChange.from_counters(product_id, now_counters[product_id], now)
        while True:
            event = await subscription.queue.get()
            yield StockChange.from_event(channels[event.channel], event.data)


async def hold_feed(events: EventHub, customer_id: ObjectId) -> AsyncGenerator[HoldChange, None]:
    """Every change to the customer's holds as it is published (created, expired, cancelled,
    completed), wherever it was made. Close the iterator (aclosing) to leave the channel at
    once."""
    async with events.subscribe([customer_channel(customer_id)]) as subscription:
        while True:
            event = await subscription.queue.get()
            yield HoldChange.from_event(event.data)


async def waiting_room_feed(
    events: EventHub, read: TicketRead, customer_id: ObjectId, product_id: ObjectId
) -> AsyncGenerator[Ticket | None, None]:
    """The customer's ticket in the product's waiting room: first as it is now (None: not
    joined), then again whenever the customer joins, the room moves (admissions, lapses,
    the start, sold out) or the customer's holds change (a reserve uses the admission),
    when it differs from the last one sent. Read after subscribing, so no move falls in
    between."""
    keys = ProductKeys(product_id)
    channels = [
        keys.room_events,
        keys.room_ticket_events(customer_id),
        customer_channel(customer_id),
    ]
    async with events.subscribe(channels) as subscription:
        last = await read(customer_id, product_id)
        yield last
        while True:
            await subscription.queue.get()
            ticket = await read(customer_id, product_id)
            if ticket != last:
                last = ticket
                yield ticket
