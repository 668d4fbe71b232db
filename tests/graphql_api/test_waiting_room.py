"""The waiting room through the GraphQL endpoint: the admin setting, joining, the ticket,
reserve's NOT_ADMITTED, and the live feed across two real server processes."""

import json
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import httpx
import pytest
from bson import ObjectId

from catalog.validation import ProductDraft, waiting_room_rule
from models import Database, Product
from models.common import utcnow
from reservations.keys import ProductKeys
from reservations.room_recorder import RoomRecorder
from services import Services
from tests.conftest import GraphQL, error_codes, signed_in
from tests.polling import eventually
from tests.processes import ServerProcess, running, shared_env
from tests.ws import session

CREATE = """mutation C($i: ProductInput!) { createProduct(input: $i) {
  product { id waitingRoom { enabled opensBeforeSeconds admissionSeconds oversubscription } }
  errors { code } } }"""
UPDATE = """mutation U($id: ID!, $i: ProductUpdateInput!) { updateProduct(id: $id, input: $i) {
  product { waitingRoom { oversubscription } } errors { code } } }"""
JOIN = """mutation J($p: ID!) { joinWaitingRoom(productId: $p) {
  ticket { state position peopleAhead waiting } errors { code message field } } }"""
MINE = """query M($p: ID!) { myWaitingRoom(productId: $p) {
  state position peopleAhead waiting admissionExpiresAt admissionSecondsLeft drawsAt
  estimatedWaitSeconds } }"""
RESERVE = """mutation R($p: ID!) { reserve(productId: $p, quantity: 1) {
  reservation { id } errors { code position } } }"""
LIVE = """subscription W($p: ID!) { waitingRoom(productId: $p) { state position } }"""
ROOM = {"enabled": True, "opensBeforeSeconds": 600, "admissionSeconds": 60}


async def room_product(services: Services, total_stock: int = 1, **rule: Any) -> str:
    settings: dict[str, Any] = {
        "enabled": True,
        "opens_before_seconds": 600,
        "admission_seconds": 60,
        "oversubscription": Decimal("1"),
    }
    settings.update(rule)
    draft = ProductDraft.parse(
        name="Drop",
        price=Decimal("10"),
        total_stock=total_stock,
        waiting_room=waiting_room_rule(**settings),
    )
    return str((await services.catalog.create(draft)).id)


async def test_an_admin_sets_the_room_on_a_product(
    gql: GraphQL, admin_token: str, database: Database
) -> None:
    created = await gql(
        CREATE,
        {
            "i": {
                "name": "Drop",
                "price": "10",
                "totalStock": 3,
                "waitingRoom": {**ROOM, "oversubscription": 1.5},
            }
        },
        token=admin_token,
    )
    product = created["data"]["createProduct"]["product"]
    assert product["waitingRoom"] == {**ROOM, "oversubscription": 1.5}

    refused = await gql(
        UPDATE,
        {"id": product["id"], "i": {"waitingRoom": {"oversubscription": 0.5}}},
        token=admin_token,
    )
    assert error_codes(refused) == ["BAD_USER_INPUT"]
    stored = await Product.get(database, ObjectId(product["id"]))
    assert stored is not None
    assert stored.waiting_room is not None
    assert stored.waiting_room.oversubscription_percent == 150

    off = await gql(UPDATE, {"id": product["id"], "i": {"waitingRoom": None}}, token=admin_token)
    assert off["data"]["updateProduct"]["product"]["waitingRoom"] is None


async def test_reserve_waits_for_an_admission_given_in_place_order(
    gql: GraphQL, services: Services
) -> None:
    product = await room_product(services, total_stock=1)
    (_, ann_token), (_, bob_token) = await signed_in(services), await signed_in(services)
    for token in (ann_token, bob_token, ann_token):
        joined = await gql(JOIN, {"p": product}, token=token)
        assert joined["data"]["joinWaitingRoom"]["errors"] == []
    assert await services.redis.hlen(ProductKeys(ObjectId(product)).room_tickets) == 2

    refused = await gql(RESERVE, {"p": product}, token=bob_token)
    assert refused["data"]["reserve"] == {
        "reservation": None,
        "errors": [{"code": "NOT_ADMITTED", "position": 2}],
    }
    assert await services.engine.admit([ObjectId(product)]) == 1
    mine = (await gql(MINE, {"p": product}, token=ann_token))["data"]["myWaitingRoom"]
    assert mine["state"] == "ADMITTED"
    assert 58 <= mine["admissionSecondsLeft"] <= 60
    bob = (await gql(MINE, {"p": product}, token=bob_token))["data"]["myWaitingRoom"]
    assert (bob["state"], bob["position"], bob["peopleAhead"]) == ("WAITING", 1, 0)

    assert (await gql(RESERVE, {"p": product}, token=bob_token))["data"]["reserve"]["errors"]
    held = await gql(RESERVE, {"p": product}, token=ann_token)
    assert held["data"]["reserve"]["errors"] == []
    after = (await gql(MINE, {"p": product}, token=ann_token))["data"]["myWaitingRoom"]
    assert after["state"] == "RESERVED"


async def test_joining_needs_a_room_and_a_signed_in_customer(
    gql: GraphQL, services: Services, customer_token: str
) -> None:
    plain = str(
        (
            await services.catalog.create(
                ProductDraft.parse(name="P", price=Decimal("1"), total_stock=1)
            )
        ).id
    )
    body = await gql(JOIN, {"p": plain}, token=customer_token)
    assert body["data"]["joinWaitingRoom"]["errors"][0]["code"] == "WAITING_ROOM_CLOSED"
    anonymous = await gql(JOIN, {"p": await room_product(services)})
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    assert (await gql(MINE, {"p": plain}, token=customer_token))["data"]["myWaitingRoom"] is None


@pytest.fixture(scope="module")
def two_servers(servers: dict[str, str], settings: Any) -> Iterator[list[ServerProcess]]:
    with running(shared_env(servers, settings.mongodb_db), 2) as started:
        yield started


async def test_the_live_ticket_follows_admissions_made_by_another_process(
    services: Services, two_servers: list[ServerProcess]
) -> None:
    """A shopper watches through one process and joins through the other; the servers'
    own background loops admit her (units free), and the feed says so."""
    watcher, shop = two_servers
    product = await room_product(services, total_stock=1, admission_seconds=5)
    first, second = await signed_in(services), await signed_in(services)
    channel = ProductKeys(ObjectId(product)).room_events

    async with session(watcher.url, second[1]) as live:
        await live.subscribe(LIVE, {"p": product})
        assert (await live.next_data())["waitingRoom"] is None  # not joined yet

        async def listening() -> bool:
            ((_, count),) = await services.redis.pubsub_numsub(channel)
            return count > 0

        await eventually(listening, within=10, every=0.05, failure=lambda: "no listener")
        async with httpx.AsyncClient(timeout=30) as http:
            for _, token in (first, second):
                answer = await http.post(
                    f"{shop.url}/graphql",
                    json={"query": JOIN, "variables": {"p": product}},
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert answer.json()["data"]["joinWaitingRoom"]["errors"] == []
        # The first is admitted at once and lets her 5 s go by: the second is told she is
        # next, then that she is admitted.
        seen = [(await live.next_data())["waitingRoom"]]
        while seen[-1]["state"] != "ADMITTED":
            seen.append((await live.next_data())["waitingRoom"])
        assert {"state": "WAITING", "position": 1} in seen
        assert seen[-1] == {"state": "ADMITTED", "position": None}

    # She uses her turn (so no lapse comes later), and the servers record the tickets in
    # MongoDB on their own ticks: let them finish, so that nothing of this test lands after
    # the next one cleaned the database.
    async with httpx.AsyncClient(timeout=30) as http:
        answer = await http.post(
            f"{shop.url}/graphql",
            json={"query": RESERVE, "variables": {"p": product}},
            headers={"Authorization": f"Bearer {second[1]}"},
        )
        # [] unless a stall let her 5 s pass first: then the room ends her turn instead.
        assert answer.json()["data"]["reserve"]["errors"] in (
            [],
            [{"code": "NOT_ADMITTED", "position": None}],
        )
    log = ProductKeys(ObjectId(product)).room_log

    tickets = ProductKeys(ObjectId(product)).room_tickets

    async def recorded() -> bool:
        ticket = json.loads(await services.redis.hget(tickets, str(second[0])) or "{}")
        return ticket.get("s") in ("RESERVED", "EXPIRED") and await services.redis.xlen(log) == 0

    await eventually(recorded, within=10, every=0.1, failure=lambda: "the room log stayed")


STATS = """query S($f: DateTime!, $t: DateTime!) { salesStats(from: $f, to: $t) {
  waitingRoom { joined admitted reserved bought abandoned medianWaitSeconds } } }"""


async def test_sales_stats_count_the_room_funnel(
    gql: GraphQL, services: Services, admin_token: str
) -> None:
    product = await room_product(services, total_stock=1)
    (_, ann), (_, bob) = await signed_in(services), await signed_in(services)
    for token in (ann, bob):
        await gql(JOIN, {"p": product}, token=token)
    await services.engine.admit([ObjectId(product)])  # or the servers' loops, if running
    held = await gql(RESERVE, {"p": product}, token=ann)
    assert held["data"]["reserve"]["errors"] == []
    # Recorded by this recorder, or by the servers' own if this module started them.
    await RoomRecorder(services.redis, services.database, consumer="test").run_once(
        [ObjectId(product)]
    )
    now = utcnow()
    window = {
        "f": (now - timedelta(hours=1)).isoformat(),
        "t": (now + timedelta(hours=1)).isoformat(),
    }
    funnel: dict[str, Any] = {}

    async def counted() -> bool:
        nonlocal funnel
        funnel = (await gql(STATS, window, token=admin_token))["data"]["salesStats"]["waitingRoom"]
        return bool(funnel["reserved"] == 1)

    await eventually(counted, within=10, every=0.1, failure=lambda: f"not recorded: {funnel}")
    assert funnel == {
        "joined": 2,
        "admitted": 1,
        "reserved": 1,
        "bought": 0,
        "abandoned": 0,
        "medianWaitSeconds": pytest.approx(0, abs=1),
    }
