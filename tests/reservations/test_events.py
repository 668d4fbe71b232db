"""The per-process event hub over real Redis pub/sub: one connection, fan-out to many
subscribers, bounded queues for slow ones, channels released when the last one leaves."""

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import pytest_asyncio
from redis.asyncio import Redis

from reservations.events import QUEUE_SIZE, EventHub
from services import Services


@pytest_asyncio.fixture(loop_scope="session")
async def hub(services: Services) -> AsyncIterator[EventHub]:
    """A hub of the test's own on the suite's Redis, closed after it."""
    built = EventHub(services.redis)
    try:
        yield built
    finally:
        await built.close()


def new_channel() -> str:
    return f"fs:test:{uuid.uuid4().hex}"


async def test_one_connection_fans_out_and_a_slow_subscriber_only_loses_its_oldest(
    services: Services, hub: EventHub
) -> None:
    channel = new_channel()
    async with hub.subscribe([channel]) as reader, hub.subscribe([channel]) as sleeper:
        ((_, listeners),) = await services.redis.pubsub_numsub(channel)
        assert listeners == 1  # one Redis subscription for both

        received: list[int] = []

        async def read(count: int) -> None:
            while len(received) < count:
                received.append((await reader.queue.get()).data["n"])

        reading = asyncio.create_task(read(500))
        for n in range(500):
            await services.redis.publish(channel, json.dumps({"n": n}))
        await asyncio.wait_for(reading, 10)

        assert received == list(range(500))  # the reader kept up and lost nothing
        # The one that never read holds only the newest QUEUE_SIZE, and knows it lost some.
        assert sleeper.queue.qsize() == QUEUE_SIZE
        assert sleeper.dropped == 500 - QUEUE_SIZE
        assert sleeper.queue.get_nowait().data["n"] == 500 - QUEUE_SIZE
    ((_, listeners),) = await services.redis.pubsub_numsub(channel)
    assert listeners == 0
    assert hub.subscriber_count == 0


async def test_publish_reaches_subscribers_and_an_unreachable_redis_is_reported_not_raised(
    hub: EventHub,
) -> None:
    channel = new_channel()
    async with hub.subscribe([channel]) as listener:
        assert await hub.publish(channel, {"product": "p1"})
        event = await asyncio.wait_for(listener.queue.get(), 10)
        assert (event.channel, event.data) == (channel, {"product": "p1"})

    nowhere = Redis(port=1, socket_connect_timeout=0.5)  # nothing listens on port 1
    try:
        assert await EventHub(nowhere).publish(channel, {"product": "p1"}) is False
    finally:
        await nowhere.aclose()
