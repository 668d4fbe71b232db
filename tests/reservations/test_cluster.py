"""The same code on a real three-master Redis Cluster (REDIS_CLUSTER=true): the race, the
mixed storm with expiry and every invariant, live stock across processes, and the rate
limits, with products spread over the masters."""

import uuid
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from bson import ObjectId
from redis.asyncio.cluster import RedisCluster

from catalog.validation import ProductDraft
from core.settings import Settings
from graphql_api.guards import user_write_limit
from graphql_api.ratelimit import address_limit
from ratelimit import Count
from reservations.keys import ProductKeys
from services import Services, build_services, rate_limits_from
from tests.cluster import redis_cluster
from tests.conftest import FrozenTime
from tests.processes import base_env, running
from tests.reservations.storm import (
    RESERVE,
    call,
    customer_token,
    fifty_for_ten,
    storm,
    storm_product,
)
from tests.ws import session


@pytest.fixture(scope="module")
def cluster_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with redis_cluster(Path(tmp_path_factory.mktemp("cluster"))) as url:
        yield url


@pytest_asyncio.fixture(loop_scope="session")
async def on_cluster(
    cluster_url: str, settings: Settings, services: Services
) -> AsyncIterator[Services]:
    """Services on the cluster and the suite's MongoDB database (emptied per test)."""
    built = await build_services(
        settings.model_copy(update={"redis_url": cluster_url, "redis_cluster": True})
    )
    assert isinstance(built.redis, RedisCluster)
    await built.redis.flushall()  # our own cluster, started above
    try:
        yield built
    finally:
        await built.close()


def cluster_env(cluster_url: str, services: Services, **extra: str) -> dict[str, str]:
    return base_env(
        REDIS_URL=cluster_url,
        REDIS_CLUSTER="true",
        MONGODB_URI=str(services.settings.mongodb_uri),
        MONGODB_DB=services.settings.mongodb_db,
        **extra,
    )


async def test_fifty_shoppers_for_ten_units_on_the_cluster(
    cluster_url: str, on_cluster: Services
) -> None:
    with running(cluster_env(cluster_url, on_cluster), 2) as servers:
        await fifty_for_ten(on_cluster, [server.url for server in servers])


async def test_mixed_storm_on_the_cluster_keeps_every_invariant(
    cluster_url: str, on_cluster: Services
) -> None:
    cluster = on_cluster.redis
    assert isinstance(cluster, RedisCluster)
    # Products whose keys live on more than one master (a product's slot follows from its
    # random id, so three new ones all land on one master one time in nine): new products
    # until two masters own some, each product wholly on its own slot.
    owners: dict[ObjectId, str] = {}
    while len(owners) < 3 or len(set(owners.values())) < 2:
        assert len(owners) < 30, owners
        product = await storm_product(on_cluster, len(owners))
        keys = ProductKeys(product)
        nodes = {
            cluster.get_node_from_key(key).name
            for key in (keys.stock, keys.holds, keys.expiry, keys.log, keys.customers)
        }
        assert len(nodes) == 1, nodes
        owners[product] = nodes.pop()
    one_per_master = list({master: p for p, master in owners.items()}.values())
    products = (one_per_master + [p for p in owners if p not in one_per_master])[:3]
    # In the body, not a fixture: `running` then shows the servers' output if it fails.
    with running(cluster_env(cluster_url, on_cluster), 2) as servers:
        await storm(on_cluster, [server.url for server in servers], products)
    assert {p async for p in _stock_products(cluster)} >= set(products)


async def _stock_products(cluster: RedisCluster) -> AsyncIterator[ObjectId]:
    async for key in cluster.scan_iter(match="fs:{*}:stock"):
        yield ObjectId(str(key).split("{")[1].split("}")[0])


async def test_live_stock_and_rate_limits_across_processes_on_the_cluster(
    cluster_url: str, on_cluster: Services
) -> None:
    product = await on_cluster.catalog.create(
        ProductDraft.parse(name="Clustered", price=Decimal("5"), total_stock=3, max_per_customer=1)
    )
    env = cluster_env(
        cluster_url,
        on_cluster,
        RATE_LIMITS_ENABLED="true",
        RATE_LIMIT_PER_IP="1000/minute",
        RATE_LIMIT_RESERVE_PER_USER="1/minute",
    )
    with running(env, 2) as (watched, acting):
        async with session(watched.url) as live:
            await live.subscribe(
                "subscription($p: [ID!]!) { stockChanged(productIds: $p) { available } }",
                {"p": [str(product.id)]},
            )
            assert (await live.next_data())["stockChanged"]["available"] == 3
            async with httpx.AsyncClient(timeout=30) as http:
                token = await customer_token(on_cluster)
                variables = {"p": str(product.id), "q": 1}
                first = await call(http, acting.url, RESERVE, variables, token)
                assert first["reserve"]["reservation"] is not None
                # Seen on the other process, through the cluster's pub/sub.
                assert (await live.next_data())["stockChanged"]["available"] == 2
                # The per-user window lives in the cluster too: the other process refuses.
                refused = await http.post(
                    f"{watched.url}/graphql",
                    json={"query": RESERVE, "variables": variables},
                    headers={"Authorization": f"Bearer {token}"},
                )
                (error,) = refused.json()["errors"]
                assert error["extensions"]["code"] == "RATE_LIMITED"
                cost = refused.json()["extensions"]["cost"]["throttleStatus"]
                assert cost["currentlyAvailable"] < cost["maximumAvailable"]
    assert product.id is not None
    counters = (await on_cluster.engine.counters([product.id]))[product.id]
    assert (counters.reserved, counters.available) == (1, 2)


async def test_a_requests_limits_are_counted_by_slot_in_order_on_the_cluster(
    on_cluster: Services,
) -> None:
    """A cluster runs a script over one slot: a signed-in request's address window goes in
    one round trip, and its cost budget and user window (tagged by the user) in a second,
    after it; an anonymous request's address and cost share a tag, so one round trip. The
    first limit that refuses still leaves the later ones uncounted."""
    frozen = FrozenTime()
    limits = rate_limits_from(
        on_cluster.redis,
        on_cluster.settings.model_copy(
            update={"rate_limit_per_ip": "1/minute", "rate_limit_reserve_per_user": "5/minute"}
        ),
        prefix=f"fs:test:{uuid.uuid4().hex}",
        clock=frozen.time,
    )
    user = ObjectId()

    def request(address: str) -> list[Count[Any]]:
        return [
            address_limit(limits, address),
            limits.cost.count(f"user:{user}", 7),
            user_write_limit(limits, "reserve", user),
        ]

    def round_trips(counts: list[Count[Any]]) -> list[int]:
        return [len(run) for run in limits.store.runs(counts)]

    first = request("192.0.2.1")
    assert round_trips(first) == [1, 2]
    counted = await limits.count(first)
    assert [getattr(counted.of(c), "allowed", None) for c in first] == [True, True, True]
    assert getattr(counted.of(first[1]), "available", None) == limits.cost.capacity - 7

    refused = request("192.0.2.1")  # over the address's one a minute
    counted = await limits.count(refused)
    assert getattr(counted.of(refused[0]), "allowed", None) is False
    assert [counted.of(refused[1]), counted.of(refused[2])] == [None, None]

    other = request("192.0.2.2")  # the cost and window the refused request did not use
    counted = await limits.count(other)
    assert getattr(counted.of(other[2]), "remaining", None) == 3
    assert getattr(counted.of(other[1]), "available", None) == limits.cost.capacity - 14

    anonymous: list[Count[Any]] = [
        address_limit(limits, "192.0.2.3"),
        limits.cost.count("ip:192.0.2.3", 1),
    ]
    assert round_trips(anonymous) == [2]
    counted = await limits.count(anonymous)
    assert all(counted.of(c) is not None for c in anonymous)
