"""Lists read their products in batches: what `myReservations { product { ... } }` and
`myOrders { product { ... } }` send to MongoDB and Redis does not grow with the number of
items. MongoDB's commands are counted by a PyMongo CommandListener on a client of the test's
own (the catalog and the engine are handed its database), Redis's round trips by a
connection class that counts what it writes (a pipeline is one write, one round trip)."""

import dataclasses
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring
from redis.asyncio import ConnectionPool, Redis
from redis.asyncio.connection import Connection

from catalog.service import CatalogService
from catalog.validation import ProductDraft
from core.settings import Settings
from graphql_api.app import create_app
from reservations.persister import ChangeLogPersister
from reservations.service import ReservationEngine
from services import Services
from tests.conftest import signed_in

# The collections a list of holds or orders reads; users (the caller's liveness, checked at
# most every few seconds) are left out.
READ_FOR_LISTS = {"products", "reservations", "orders"}
HOLDS = """{ myReservations { id product { name available holdSeconds } } }"""
ORDERS = """{ myOrders { id product { name available } } }"""


class CommandLog(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[tuple[str, str]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        target = event.command.get(event.command_name)
        if isinstance(target, str) and target in READ_FOR_LISTS:
            self.commands.append((event.command_name, target))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@dataclass
class RoundTrips:
    count: int = 0

    def connection_class(self) -> type[Connection]:
        trips = self

        class Counted(Connection):
            async def send_packed_command(
                self, command: bytes | str | Any, check_health: bool = True
            ) -> None:
                trips.count += 1
                await super().send_packed_command(command, check_health)

        return Counted


@dataclass
class Counted:
    services: Services
    mongo: CommandLog
    redis: RoundTrips
    persister: ChangeLogPersister
    products: list[ObjectId] = field(default_factory=list)


@pytest_asyncio.fixture(loop_scope="session")
async def counted(services: Services, settings: Settings) -> AsyncIterator[Counted]:
    """`services` on a MongoDB client and a Redis pool whose traffic is counted."""
    assert settings.mongodb_uri is not None
    assert settings.redis_url is not None
    log, trips = CommandLog(), RoundTrips()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        settings.mongodb_uri, tz_aware=True, event_listeners=[log]
    )
    redis = Redis(
        connection_pool=ConnectionPool.from_url(
            settings.redis_url, connection_class=trips.connection_class(), decode_responses=True
        )
    )
    database = mongo[settings.mongodb_db]
    engine = ReservationEngine(
        redis, database, default_hold_seconds=settings.reservation_ttl_seconds
    )
    try:
        yield Counted(
            dataclasses.replace(
                services, redis=redis, engine=engine, catalog=CatalogService(database, stock=engine)
            ),
            log,
            trips,
            ChangeLogPersister(redis, database),
        )
    finally:
        await redis.aclose(close_connection_pool=True)
        await mongo.close()


async def _customer_with(counted: Counted, products: int, holds: int, bought: int) -> str:
    """A new customer holding `holds` units over `products` new products (one each), of
    which `bought` were checked out; all recorded in MongoDB."""
    services = counted.services
    customer, token = await signed_in(services)
    ids = []
    for _ in range(products):
        draft = ProductDraft.parse(
            name=f"P {uuid.uuid4().hex[:6]}",
            price=Decimal("2.50"),
            total_stock=100,
            max_per_customer=holds,
        )
        product = await services.catalog.create(draft)
        assert product.id is not None
        ids.append(product.id)
    held = [await services.engine.reserve(customer, ids[n % products], 1) for n in range(holds)]
    for hold in held[:bought]:
        await services.engine.checkout(hold.id, customer)
    await counted.persister.run_once(ids)
    return token


async def _sent(counted: Counted, token: str, query: str) -> tuple[list[tuple[str, str]], int]:
    """MongoDB's commands on the lists' collections and Redis's round trips for `query`,
    after the same query warmed the process (connections open, scripts loaded, products
    in Redis); the catalog's product cache starts empty, as after a second."""
    services = counted.services

    async def ask(on: Services) -> dict[str, Any]:
        transport = httpx.ASGITransport(app=create_app(on.settings, on))
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            answer = await http.post(
                "/graphql", json={"query": query}, headers={"Authorization": f"Bearer {token}"}
            )
        assert answer.status_code == 200, answer.text
        body: dict[str, Any] = answer.json()
        assert not body.get("errors"), body
        return body

    await ask(services)
    fresh = dataclasses.replace(
        services, catalog=CatalogService(services.engine.database, stock=services.engine)
    )
    counted.mongo.commands.clear()
    before = counted.redis.count
    body = await ask(fresh)
    items = next(iter(body["data"].values()))
    assert items
    assert all(item["product"]["name"] for item in items)
    return sorted(counted.mongo.commands), counted.redis.count - before


@pytest.mark.parametrize(("query", "bought"), [(HOLDS, 0), (ORDERS, 2)])
async def test_a_list_s_products_cost_the_same_reads_for_2_items_as_for_10(
    counted: Counted, query: str, bought: int
) -> None:
    small = await _sent(counted, await _customer_with(counted, 1, 2, bought), query)
    large = await _sent(counted, await _customer_with(counted, 5, 10, bought * 5), query)
    assert large == small
    commands, round_trips = small
    # One read of the list's own collection(s), one of its products (a single $in).
    assert commands.count(("find", "products")) == 1
    # The holds' live state (myReservations) and the products' counters, each one pipeline.
    assert round_trips == (2 if query == HOLDS else 1)
