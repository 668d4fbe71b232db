"""Subscriptions over graphql-transport-ws against two real server processes sharing Redis:
a change made through one process reaches a subscriber on the other."""

import asyncio
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from bson import ObjectId
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from catalog.validation import ProductDraft
from models import Role
from reservations.events import CATALOG_CHANNEL, customer_channel, stock_channel
from services import Services
from tests.conftest import signed_in
from tests.polling import eventually
from tests.processes import ServerProcess, running, shared_env
from tests.ws import session, ws_url

STOCK = """subscription S($ids: [ID!]!) { stockChanged(productIds: $ids) {
  productId available reserved sold at } }"""
MINE = """subscription { myReservationEvents {
  reservationId productId status quantity expiresAt at } }"""
RESERVE = """mutation R($p: ID!, $q: Int!) { reserve(productId: $p, quantity: $q) {
  reservation { id expiresAt } errors { code } } }"""
CREATED = """subscription { productCreated { id name price available holdSeconds } }"""
CREATE = """mutation C($i: ProductInput!) { createProduct(input: $i) {
  product { id } errors { code } } }"""
CANCEL = """mutation C($r: ID!) { cancelReservation(reservationId: $r) { errors { code } } }"""
SETTLE_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def two_servers(servers: dict[str, str], settings: Any) -> Iterator[list[ServerProcess]]:
    env = shared_env(servers, settings.mongodb_db, ALLOWED_ORIGINS="https://shop.example")
    with running(env, 2) as started:
        yield started


async def _product(services: Services, **fields: Any) -> str:
    values: dict[str, Any] = {"name": "Phone", "price": Decimal("9.99"), "total_stock": 10}
    values.update(fields)
    return str((await services.catalog.create(ProductDraft.parse(**values))).id)


async def _call(url: str, query: str, variables: dict[str, Any], token: str) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(
            f"{url}/graphql",
            json={"query": query, "variables": variables},
            headers={"Authorization": f"Bearer {token}"},
        )
    body: dict[str, Any] = answer.json()
    assert "errors" not in body, body
    data: dict[str, Any] = body["data"]
    return data


async def _listeners(services: Services, channel: str, *, listening: bool) -> None:
    """Wait (bounded) until some process listens on `channel`, or none does any more."""

    async def as_wanted() -> bool:
        ((_, count),) = await services.redis.pubsub_numsub(channel)
        return (count > 0) == listening

    await eventually(
        as_wanted,
        within=SETTLE_TIMEOUT,
        every=0.05,
        failure=lambda: f"{channel}: listening should be {listening}",
    )


async def test_stock_changes_on_one_process_reach_subscribers_on_the_other(
    services: Services, two_servers: list[ServerProcess]
) -> None:
    watcher, shop = two_servers
    product = await _product(services)
    other = await _product(services, name="Laptop")
    customer = (await signed_in(services))[1]

    async with session(watcher.url) as live:
        await live.subscribe(STOCK, {"ids": [product]})
        first = (await live.next_data())["stockChanged"]
        assert (first["productId"], first["available"], first["reserved"]) == (product, 10, 0)

        await _call(shop.url, RESERVE, {"p": other, "q": 1}, customer)  # not watched
        reserved = await _call(shop.url, RESERVE, {"p": product, "q": 3}, customer)
        change = (await live.next_data())["stockChanged"]
        assert change["productId"] == product  # the other product's change never came
        assert (change["available"], change["reserved"], change["sold"]) == (7, 3, 0)

        hold = reserved["reserve"]["reservation"]["id"]
        await _call(shop.url, CANCEL, {"r": hold}, customer)
        back = (await live.next_data())["stockChanged"]
        assert (back["available"], back["reserved"]) == (10, 0)

    # The subscriber is gone, and so is the process's Redis subscription.
    await _listeners(services, stock_channel(ObjectId(product)), listening=False)


async def test_my_reservation_events_follow_my_holds_only(
    services: Services, two_servers: list[ServerProcess]
) -> None:
    watcher, shop = two_servers
    product = await _product(services, hold_seconds=5)
    me, token = await signed_in(services)
    stranger = (await signed_in(services))[1]

    async with session(watcher.url, token) as live:
        await live.subscribe(MINE)
        # graphql-transport-ws does not acknowledge a subscribe: wait until the process
        # listens on my channel before acting.
        await _listeners(services, customer_channel(me), listening=True)

        await _call(shop.url, RESERVE, {"p": product, "q": 1}, stranger)
        first = await _call(shop.url, RESERVE, {"p": product, "q": 2}, token)
        second = await _call(shop.url, RESERVE, {"p": product, "q": 1}, token)
        first_id = first["reserve"]["reservation"]["id"]
        second_id = second["reserve"]["reservation"]["id"]

        created = [(await live.next_data())["myReservationEvents"] for _ in range(2)]
        assert [(e["reservationId"], e["status"], e["quantity"]) for e in created] == [
            (first_id, "ACTIVE", 2),
            (second_id, "ACTIVE", 1),
        ]
        assert created[0]["productId"] == product
        assert created[0]["expiresAt"] == first["reserve"]["reservation"]["expiresAt"]

        await _call(shop.url, CANCEL, {"r": first_id}, token)
        cancelled = (await live.next_data())["myReservationEvents"]
        assert (cancelled["reservationId"], cancelled["status"]) == (first_id, "CANCELLED")

        # The second hold lapses (5 s): the storefront hears it the moment it expires.
        expired = (await live.next_data())["myReservationEvents"]
        assert (expired["reservationId"], expired["status"]) == (second_id, "EXPIRED")
        assert expired["at"] >= expired["expiresAt"]

    await _listeners(services, customer_channel(me), listening=False)


async def test_a_product_created_on_one_process_reaches_storefronts_on_the_other(
    services: Services, two_servers: list[ServerProcess]
) -> None:
    watcher, shop = two_servers
    admin = (await signed_in(services, Role.ADMIN))[1]

    async with session(watcher.url) as live:  # anonymous, as a storefront starts
        await live.subscribe(CREATED)
        await _listeners(services, CATALOG_CHANNEL, listening=True)
        name = f"Drop {ObjectId()}"
        draft = {"name": name, "price": "12.50", "totalStock": 7, "holdSeconds": 30}
        created = await _call(shop.url, CREATE, {"i": draft}, admin)
        product_id = created["createProduct"]["product"]["id"]

        news = (await live.next_data())["productCreated"]
        assert news == {
            "id": product_id,
            "name": name,
            "price": "12.50",
            "available": 7,
            "holdSeconds": 30,
        }

    await _listeners(services, CATALOG_CHANNEL, listening=False)


async def test_subscriptions_refuse_bad_tokens_and_anonymous_callers(
    services: Services, two_servers: list[ServerProcess]
) -> None:
    url = ws_url(two_servers[0].url)
    async with connect(url, subprotocols=[Subprotocol("graphql-transport-ws")]) as socket:
        await socket.send(
            json.dumps({"type": "connection_init", "payload": {"Authorization": "Bearer junk"}})
        )
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), 10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4403

    async with session(two_servers[0].url) as anonymous:
        await anonymous.subscribe(MINE)
        message = await anonymous.receive()
        assert message["type"] == "error"
        assert message["payload"][0]["extensions"]["code"] == "UNAUTHENTICATED"

        await anonymous.subscribe(STOCK, {"ids": ["not-an-id"]})
        message = await anonymous.receive()
        assert message["type"] in ("error", "next")
        errors = message["payload"] if message["type"] == "error" else message["payload"]["errors"]
        assert errors[0]["extensions"]["code"] == "BAD_USER_INPUT"


async def test_a_storefront_on_an_allowed_origin_may_connect(
    two_servers: list[ServerProcess],
) -> None:
    async with session(two_servers[0].url, Origin="https://shop.example") as allowed:
        assert allowed is not None
    url = ws_url(two_servers[0].url)
    with pytest.raises(Exception, match="403"):
        async with connect(
            url,
            subprotocols=[Subprotocol("graphql-transport-ws")],
            additional_headers={"Origin": "https://evil.example"},
        ):
            pass
