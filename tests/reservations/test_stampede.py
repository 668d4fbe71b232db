"""Stampedes over HTTP against two real server processes sharing Redis and MongoDB, then
the invariants of docs/invariants.md checked in both stores."""

import asyncio
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest

from catalog.validation import ProductDraft
from models import Order
from reservations.audit import audit
from services import Services
from tests.processes import ServerProcess, WorkerProcess, running, shared_env
from tests.reservations.storm import (
    CHECKOUT,
    RESERVE,
    call,
    customer_token,
    fifty_for_ten,
    settled,
    storm,
)


@pytest.fixture
def two_servers(servers: dict[str, str], services: Services) -> Iterator[list[ServerProcess]]:
    with running(shared_env(servers, services.settings.mongodb_db), 2) as started:
        yield started


async def test_fifty_shoppers_for_ten_units_on_two_processes(
    services: Services, two_servers: list[ServerProcess]
) -> None:
    await fifty_for_ten(services, [server.url for server in two_servers])


async def test_mixed_storm_keeps_every_invariant(
    services: Services, two_servers: list[ServerProcess]
) -> None:
    await storm(services, [server.url for server in two_servers])


async def test_two_hundred_checkouts_of_one_product_on_two_processes(
    services: Services, two_servers: list[ServerProcess]
) -> None:
    """200 shoppers check out their holds of one product at once, half through each
    process: two processes' order transactions race on one product document while their
    persisters record the holds. Every shopper gets its order; the stores agree."""
    urls = [server.url for server in two_servers]
    product = await services.catalog.create(
        ProductDraft.parse(name="Drop", price=Decimal("10"), total_stock=200, max_per_customer=1)
    )
    assert product.id is not None
    tokens = [await customer_token(services) for _ in range(200)]
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=200), timeout=60) as http:
        held = await asyncio.gather(
            *(
                call(http, urls[n % 2], RESERVE, {"p": str(product.id), "q": 1}, token)
                for n, token in enumerate(tokens)
            )
        )
        answers = await asyncio.gather(
            *(
                call(
                    http, urls[n % 2], CHECKOUT, {"r": data["reserve"]["reservation"]["id"]}, token
                )
                for n, (data, token) in enumerate(zip(held, tokens, strict=True))
            )
        )

    outcomes = Counter(
        (answer["checkout"]["errors"] or [{"code": "OK"}])[0]["code"] for answer in answers
    )
    assert outcomes == {"OK": 200}, outcomes
    await settled(services, [product.id])
    report = await audit(services.engine, [product.id])
    assert report.ok, report.problems
    assert await Order.count(services.database) == 200


async def test_workers_keep_the_sale_for_api_processes_without_background_tasks(
    servers: dict[str, str], services: Services
) -> None:
    """Expiry, the persister and recovery only in two `flashsale worker` processes (at once,
    on the same products); the two API processes only serve."""
    env = shared_env(servers, services.settings.mongodb_db, BACKGROUND_TASKS="false")
    with running(env, 2) as apis, running(env, 2, WorkerProcess):
        await storm(services, [api.url for api in apis])
