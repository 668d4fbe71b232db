"""Live events, fanned out in each process from one Redis pub/sub connection.

The engine's scripts PUBLISH every stock change on the product's channel and every hold
change on its customer's channel, in the same atomic step as the change. An `EventHub`
holds one pub/sub connection for its process: it subscribes a channel while at least one
local subscriber wants it, and copies each message into every such subscriber's bounded
queue. A slow subscriber loses its oldest messages (it is told how many), never blocks
the others, and never grows memory without bound.
"""

import asyncio
import contextlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from bson import ObjectId
from redis.asyncio import Redis
from redis.exceptions import RedisError

from models import ReservationStatus
from reservations.keys import PREFIX, ProductKeys, customer_channel
from reservations.values import ReservationId, StockCounters, text, to_datetime
from telemetry import SUBSCRIPTIONS

__all__ = ["Event", "EventHub", "HoldChange", "StockChange", "customer_channel", "stock_channel"]

logger = logging.getLogger("flashsale.events")

QUEUE_SIZE = 100
RECONNECT_DELAY_SECONDS = 0.5


def stock_channel(product_id: ObjectId) -> str:
    return ProductKeys(product_id).events


CATALOG_CHANNEL = f"{PREFIX}:catalog:events"
"""Where product creations are announced ({"product": id}): one channel for the shop."""


@dataclass(frozen=True)
class Event:
    channel: str
    data: dict[str, Any]


@dataclass(eq=False)  # compared and hashed by identity
class Subscription:
    channels: frozenset[str]
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))
    dropped: int = 0

    def offer(self, event: Event) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)


class EventHub:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        self._pubsub = redis.pubsub(ignore_subscribe_messages=True)
        self._subscribers: dict[str, set[Subscription]] = {}
        self._wanted: Counter[str] = Counter()
        self._reader: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._listening = asyncio.Event()  # set while any channel is subscribed

    @property
    def subscriber_count(self) -> int:
        return len({s for subs in self._subscribers.values() for s in subs})

    @contextlib.asynccontextmanager
    async def subscribe(self, channels: Iterable[str]) -> AsyncIterator[Subscription]:
        """A subscription to these channels for the duration of the block."""
        subscription = Subscription(frozenset(channels))
        await self._add(subscription)
        SUBSCRIPTIONS.inc()
        try:
            yield subscription
        finally:
            SUBSCRIPTIONS.dec()
            await self._remove(subscription)

    async def _add(self, subscription: Subscription) -> None:
        async with self._lock:
            new = []
            for channel in subscription.channels:
                self._subscribers.setdefault(channel, set()).add(subscription)
                self._wanted[channel] += 1
                if self._wanted[channel] == 1:
                    new.append(channel)
            if new:
                try:
                    await self._pubsub.subscribe(*new)
                except BaseException:
                    # Not subscribed (Redis out of reach): counted as wanted, a channel
                    # would never be subscribed again in this process.
                    self._drop(subscription)
                    raise
            self._listening.set()
            if self._reader is None or self._reader.done():
                self._reader = asyncio.create_task(self._read(), name="event-hub")

    async def _remove(self, subscription: Subscription) -> None:
        async with self._lock:
            gone = self._drop(subscription)
            if gone:
                with contextlib.suppress(RedisError, OSError):
                    await self._pubsub.unsubscribe(*gone)

    def _drop(self, subscription: Subscription) -> list[str]:
        """Take the subscription out of the books; returns the channels nobody wants now."""
        gone = []
        for channel in subscription.channels:
            self._subscribers.get(channel, set()).discard(subscription)
            self._wanted[channel] -= 1
            if self._wanted[channel] <= 0:
                del self._wanted[channel]
                self._subscribers.pop(channel, None)
                gone.append(channel)
        if not self._wanted:
            self._listening.clear()
        return gone

    async def _read(self) -> None:
        while True:
            await self._listening.wait()
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (RedisError, OSError) as exc:
                logger.warning("event listener lost Redis, reconnecting: %s", exc)
                await asyncio.sleep(RECONNECT_DELAY_SECONDS)
                continue
            if message is None or message.get("type") != "message":
                continue
            channel = text(message["channel"])
            try:
                event = Event(channel, json.loads(message["data"]))
            except ValueError:
                logger.warning("unreadable event on %s", channel)
                continue
            for subscription in tuple(self._subscribers.get(channel, ())):
                subscription.offer(event)

    async def publish(self, channel: str, data: dict[str, Any]) -> bool:
        """Best effort: False (logged) when Redis is out of reach. For news a subscriber
        can also learn by asking again (a storefront that misses a new product lists it at
        its next load); a change that must not be missed is published by its Lua script."""
        try:
            await self._redis.publish(channel, json.dumps(data))
        except (RedisError, OSError) as exc:
            logger.warning("could not publish on %s: %s", channel, exc)
            return False
        return True

    async def close(self) -> None:
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._reader
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]


@dataclass(frozen=True)
class StockChange:
    product_id: ObjectId
    total: int
    sold: int
    reserved: int
    at: datetime

    @property
    def available(self) -> int:
        return self.total - self.sold - self.reserved

    @classmethod
    def from_counters(
        cls, product_id: ObjectId, counters: StockCounters, at: datetime
    ) -> "StockChange":
        return cls(product_id, counters.total, counters.sold, counters.reserved, at)

    @classmethod
    def from_event(cls, product_id: ObjectId, data: dict[str, Any]) -> "StockChange":
        return cls(
            product_id,
            int(data["total"]),
            int(data["sold"]),
            int(data["reserved"]),
            to_datetime(int(data["at"])),
        )


@dataclass(frozen=True)
class HoldChange:
    reservation_id: ReservationId
    status: ReservationStatus
    quantity: int
    expires_at: datetime
    at: datetime

    @classmethod
    def from_event(cls, data: dict[str, Any]) -> "HoldChange":
        return cls(
            ReservationId(ObjectId(data["product"]), ObjectId(data["hold"])),
            ReservationStatus(data["status"]),
            int(data["quantity"]),
            to_datetime(int(data["expires"])),
            to_datetime(int(data["at"])),
        )
