"""What a signed-in reserve and checkout send to Redis, as a Redis server of the test's own
saw it (MONITOR, the commands of clients, not those a script runs): all of a request's rate
limits (its address window, its cost budget, its user's window) are one command, one round
trip. Each limit used to be a call of its own: three."""

import dataclasses
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from decimal import Decimal
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from catalog.service import CatalogService
from catalog.validation import ProductDraft
from core.settings import load_settings
from flashsale.embedded import EmbeddedServers, start_embedded
from graphql_api.app import create_app
from reservations import ReservationEngine
from services import Services, rate_limits_from, redis_client
from tests.conftest import FrozenTime

RESERVE = """mutation R($p: ID!, $k: String) {
  reserve(productId: $p, quantity: 1, idempotencyKey: $k) {
    reservation { id } errors { code } } }"""
CHECKOUT = """mutation C($r: ID!) { checkout(reservationId: $r) {
  order { id } errors { code } } }"""


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[EmbeddedServers]:
    servers = start_embedded(tmp_path / "counted", redis=True, mongo=False)
    try:
        yield servers
    finally:
        servers.stop()


def _on(services: Services, redis: Redis, frozen: FrozenTime, *, limits: bool) -> Services:
    """`services` with everything that talks to Redis on `redis`, limits on or off."""
    configured = load_settings(
        **{
            **services.settings.model_dump(),
            "rate_limits_enabled": limits,
            "rate_limit_per_ip": "1000/minute",
            "rate_limit_reserve_per_user": "1000/minute",
        },
        _env_file=None,
    )
    engine = ReservationEngine(
        redis,
        services.mongo[configured.mongodb_db],
        default_hold_seconds=configured.reservation_ttl_seconds,
    )
    return dataclasses.replace(
        services,
        settings=configured,
        redis=redis,
        engine=engine,
        catalog=CatalogService(engine.database, stock=engine),
        rate_limits=rate_limits_from(
            redis, configured, prefix=f"fs:test:{uuid.uuid4().hex}", clock=frozen.time
        ),
    )


@asynccontextmanager
async def _client(services: Services) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=create_app(services.settings, services))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def _sent(
    redis: Redis, url: str, send: Callable[[], Awaitable[object]], limits_sha: str
) -> list[str]:
    """The commands clients sent while `send` ran, as the server saw them (MONITOR; not the
    commands scripts run): each by its name, an EVALSHA as "limits" when it runs the
    limits' script. None is pipelined here, so each is a round trip."""
    marker = uuid.uuid4().hex
    watcher = Redis.from_url(url, decode_responses=True)
    try:
        async with watcher.monitor() as monitor:
            await redis.echo(f"start-{marker}")
            await send()
            await redis.echo(f"end-{marker}")
            sent: list[str] = []
            started = False
            while True:
                seen = await monitor.next_command()
                command = seen["command"]
                if command == f"ECHO start-{marker}":
                    started = True
                elif command == f"ECHO end-{marker}":
                    return sent
                elif started and seen["client_type"] != "lua":
                    name, *args = command.split()
                    if name.upper() == "EVALSHA":
                        sent.append("limits" if args[0] == limits_sha else "EVALSHA")
                    else:
                        sent.append(name.upper())
    finally:
        await watcher.aclose()


async def _answered(http: httpx.AsyncClient, token: str, **body: Any) -> dict[str, Any]:
    answer = await http.post("/graphql", json=body, headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200, answer.text
    data: dict[str, Any] = answer.json()
    assert not data.get("errors"), data
    return data


async def _sent_by_requests(on: Services, url: str, token: str, label: str) -> dict[str, list[str]]:
    """What a reserve and a checkout send, each after one of its kind has warmed the
    process (every script loaded, the product and the user's liveness cached)."""
    redis, sha = on.redis, on.rate_limits.store.script_sha
    product = await on.catalog.create(
        ProductDraft.parse(name="Counted", price=Decimal("1"), total_stock=10, max_per_customer=10)
    )
    async with _client(on) as http:

        def reserve(key: str) -> Callable[[], Awaitable[dict[str, Any]]]:
            variables = {"p": str(product.id), "k": f"{label}-{key}"}
            return partial(_answered, http, token, query=RESERVE, variables=variables)

        def checkout(hold: str) -> Callable[[], Awaitable[dict[str, Any]]]:
            return partial(_answered, http, token, query=CHECKOUT, variables={"r": hold})

        warm = await reserve("warm")()
        await checkout(warm["data"]["reserve"]["reservation"]["id"])()
        sent = {"reserve": await _sent(redis, url, reserve("counted"), sha)}
        held = await reserve("counted")()  # the same key: the hold made just now
        hold = held["data"]["reserve"]["reservation"]["id"]
        sent["checkout"] = await _sent(redis, url, checkout(hold), sha)
        return sent


async def test_all_the_limits_of_a_reserve_and_a_checkout_are_one_round_trip(
    services: Services, own_redis: EmbeddedServers, frozen_time: FrozenTime, customer_token: str
) -> None:
    url = own_redis.redis_url
    assert url is not None
    redis = redis_client(url, cluster=False)
    try:
        off = await _sent_by_requests(
            _on(services, redis, frozen_time, limits=False), url, customer_token, "off"
        )
        on = await _sent_by_requests(
            _on(services, redis, frozen_time, limits=True), url, customer_token, "on"
        )
    finally:
        await redis.aclose(close_connection_pool=True)
    # A reserve is the limits' script and the reserve script, nothing else.
    assert on["reserve"] == ["limits", "EVALSHA"]
    assert off["reserve"] == ["EVALSHA"]
    # Whatever the engine needs for a checkout, the limits add one round trip to it.
    assert on["checkout"].count("limits") == 1
    assert [command for command in on["checkout"] if command != "limits"] == off["checkout"]
