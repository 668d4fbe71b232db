"""The stock feed (reservations.feeds): a snapshot, then every change, and the channels
left as soon as the feed is closed."""

import asyncio
import contextlib

import pytest
from bson import ObjectId

from core.errors import InvalidInput
from reservations.events import EventHub
from reservations.feeds import stock_feed
from reservations.service import ReservationEngine
from services import Services
from tests.reservations.conftest import make_product


async def test_the_feed_starts_with_now_then_follows_each_change(
    services: Services, engine: ReservationEngine
) -> None:
    first, second = (
        await make_product(engine.database, total_stock=10),
        await make_product(engine.database, total_stock=4),
    )
    await engine.ensure_loaded(first)
    await engine.ensure_loaded(second)
    hub = EventHub(services.redis)
    try:
        feed = stock_feed(hub, engine.counters, [second, first], "productIds")
        async with contextlib.aclosing(feed) as changes:
            snapshot = [await anext(changes), await anext(changes)]
            assert [(c.product_id, c.available) for c in snapshot] == [(second, 4), (first, 10)]
            await engine.reserve(ObjectId(), first, 3)
            change = await asyncio.wait_for(anext(changes), 5)
            assert (change.product_id, change.available, change.reserved) == (first, 7, 3)
            assert hub.subscriber_count == 1
        assert hub.subscriber_count == 0
    finally:
        await hub.close()


async def test_an_unknown_product_is_bad_input_and_leaves_no_subscription(
    services: Services, engine: ReservationEngine
) -> None:
    known, unknown = await make_product(engine.database), ObjectId()
    hub = EventHub(services.redis)
    try:
        feed = stock_feed(hub, engine.counters, [known, unknown], "productIds")
        with pytest.raises(InvalidInput) as refused:
            await anext(feed)
        assert refused.value.field == "productIds"
        assert refused.value.message == f"no such product: {unknown}"
        assert hub.subscriber_count == 0
    finally:
        await hub.close()
