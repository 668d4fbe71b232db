from collections.abc import AsyncIterator
from typing import Any

import pytest_asyncio
from bson import ObjectId

from models import Product
from models.stored import Database
from reservations import ReservationEngine
from reservations.keys import PREFIX
from reservations.persister import ChangeLogPersister
from services import Services

START_MS = 1_900_000_000_000  # a fixed "now" (2030-03-17) the tests move by hand


class Clock:
    def __init__(self) -> None:
        self.now = START_MS

    def __call__(self) -> int:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += int(seconds * 1000)


@pytest_asyncio.fixture(loop_scope="session")
async def clock(services: Services) -> AsyncIterator[Clock]:
    # Products from other tests must not linger in Redis: only this suite's keys go.
    async for key in services.redis.scan_iter(match=f"{PREFIX}:*", count=1000):
        await services.redis.delete(key)
    yield Clock()


@pytest_asyncio.fixture(loop_scope="session")
async def engine(services: Services, clock: Clock) -> ReservationEngine:
    return ReservationEngine(
        services.redis,
        services.mongo[services.settings.mongodb_db],
        default_hold_seconds=60,
        clock=clock,
    )


@pytest_asyncio.fixture(loop_scope="session")
async def persister(services: Services) -> ChangeLogPersister:
    return ChangeLogPersister(
        services.redis, services.mongo[services.settings.mongodb_db], consumer="test"
    )


async def make_product(database: Database, **fields: Any) -> ObjectId:
    values: dict[str, Any] = {
        "name": "Phone",
        "price_cents": 10_000,
        "total_stock": 10,
        "max_per_customer": 5,
    }
    values.update(fields)
    product = Product(**values)
    await product.insert(database)
    return product.id
