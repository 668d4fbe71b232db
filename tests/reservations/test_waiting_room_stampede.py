"""The waiting room's stampede: 2,000 shoppers join before the start through two real
server processes for 100 units; the servers' own background loops admit them; then the
invariants of the room and of the engine, checked in Redis and MongoDB."""

import asyncio
import json
import random
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import aiohttp
import pytest
from bson import ObjectId

from analytics.waiting_room import RoomFunnel, room_funnel
from catalog.validation import ProductDraft, waiting_room_rule
from models import Order, Role, User
from models.common import utcnow
from reservations.audit import audit
from reservations.keys import ProductKeys
from reservations.values import text
from services import Services
from tests.polling import eventually
from tests.processes import ServerProcess, running, shared_env
from tests.reservations.storm import CANCEL, CHECKOUT, settled, storm_call
from tests.reservations.test_waiting_room import chi_square_sf

SHOPPERS, LATE, UNITS = 2_000, 20, 100
DECILES = 10
ALPHA = 1e-5  # this test's one random check fails a correct room once in 100,000 runs
JOIN = """mutation J($p: ID!) { joinWaitingRoom(productId: $p) {
  ticket { state } errors { code } } }"""
MINE = """query M($p: ID!) { myWaitingRoom(productId: $p) { state } }"""
RESERVE = """mutation R($p: ID!) { reserve(productId: $p, quantity: 1) {
  reservation { id } errors { code } } }"""


@pytest.fixture
def two_servers(servers: dict[str, str], services: Services) -> Iterator[list[ServerProcess]]:
    with running(shared_env(servers, services.settings.mongodb_db), 2) as started:
        yield started


async def shoppers(services: Services, count: int) -> dict[str, str]:
    """`count` real customers (inserted at once), customer id -> token."""
    result = await User.collection(services.database).insert_many(
        [
            {"email": f"{ObjectId()}@test.example", "password_hash": "-", "role": "CUSTOMER"}
            for _ in range(count)
        ]
    )
    return {
        str(uid): services.accounts.tokens.issue(uid, Role.CUSTOMER) for uid in result.inserted_ids
    }


def tickets_of(raw: dict[Any, Any]) -> dict[str, dict[str, Any]]:
    return {text(k): json.loads(text(v)) for k, v in raw.items()}


async def test_two_thousand_shoppers_wait_their_turn_for_a_hundred_units(
    services: Services, two_servers: list[ServerProcess]
) -> None:
    urls = [server.url for server in two_servers]
    product = await services.catalog.create(
        ProductDraft.parse(
            name="Console",
            price=Decimal("499"),
            total_stock=UNITS,
            max_per_customer=1,
            hold_seconds=5,
            sale_starts_at=utcnow() + timedelta(hours=1),
            waiting_room=waiting_room_rule(
                enabled=True,
                opens_before_seconds=7_200,
                admission_seconds=5,
                oversubscription=Decimal("1"),
            ),
        )
    )
    assert product.id is not None
    pid, keys = str(product.id), ProductKeys(product.id)
    tokens = await shoppers(services, SHOPPERS + LATE)
    early, late = list(tokens)[:SHOPPERS], list(tokens)[SHOPPERS:]
    rng = random.Random(3)
    outcomes: Counter[str] = Counter()

    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=60)
    ) as http:

        async def join(n: int, customer: str) -> None:
            data = await storm_call(http, urls[n % 2], JOIN, {"p": pid}, tokens[customer])
            assert data["joinWaitingRoom"]["errors"] == [], data
            assert data["joinWaitingRoom"]["ticket"]["state"] == "WAITING"

        # Before the start: everyone joins, one in ten twice at once (through both processes).
        async with asyncio.TaskGroup() as joins:
            for n, customer in enumerate(early):
                joins.create_task(join(n, customer))
                if n % 10 == 0:
                    joins.create_task(join(n + 1, customer))
        tickets = tickets_of(await services.redis.hgetall(keys.room_tickets))
        assert sorted(tickets) == sorted(early)  # one ticket each
        scored: list[Any] = await services.redis.zrange(keys.room_queue, 0, -1, withscores=True)
        draws = [(text(member), float(score)) for member, score in scored]
        assert len(draws) == SHOPPERS
        assert len({score for _, score in draws}) == SHOPPERS
        assert all(0 <= score < 1 for _, score in draws)

        # The places against the join order (by time, ties by id: any order the draws do
        # not know): independent, by a chi-square test of deciles (81 degrees of freedom).
        place = {member: n for n, (member, _) in enumerate(draws)}
        joined = sorted(early, key=lambda c: (tickets[c]["j"], c))
        counts = Counter(
            (n * DECILES // SHOPPERS, place[c] * DECILES // SHOPPERS) for n, c in enumerate(joined)
        )
        expected = SHOPPERS / DECILES**2
        statistic = sum(
            (counts[(i, j)] - expected) ** 2 / expected
            for i in range(DECILES)
            for j in range(DECILES)
        )
        assert chi_square_sf(statistic, (DECILES - 1) ** 2) > ALPHA, statistic

        # The start; then the late ones queue in arrival order, behind every early joiner.
        await services.catalog.update(product.id, {"sale_starts_at": utcnow()})
        for n, customer in enumerate(late):
            await join(n, customer)
        late_scores = [await services.redis.zscore(keys.room_queue, c) for c in late]
        assert all(score is not None and score > 1 for score in late_scores)
        assert late_scores == sorted(late_scores)  # type: ignore[type-var]

        async def unused_and_available() -> tuple[int, int]:
            """At one instant (MULTI): admissions not used yet, and units available."""
            async with services.redis.pipeline(transaction=True) as pipe:
                pipe.zcard(keys.room_admitted)
                pipe.hmget(keys.stock, "total", "sold", "reserved")
                unused, (total, sold, reserved) = await pipe.execute()
            return int(unused), int(total) - int(sold) - int(reserved)

        async def act(customer: str) -> None:
            token, url = tokens[customer], rng.choice(urls)
            action = rng.random()
            if action >= 0.9:
                outcomes["LET_LAPSE"] += 1
                return
            held = (await storm_call(http, url, RESERVE, {"p": pid}, token))["reserve"]
            if held["reservation"] is None:
                outcomes["RESERVE:" + held["errors"][0]["code"]] += 1
                return
            rid = held["reservation"]["id"]
            other = urls[1 - urls.index(url)]
            if action < 0.75:
                done = await storm_call(http, other, CHECKOUT, {"r": rid}, token)
                outcomes[
                    "CHECKOUT:" + (done["checkout"]["errors"] or [{"code": "OK"}])[0]["code"]
                ] += 1
            elif action < 0.85:
                done = await storm_call(http, other, CANCEL, {"r": rid}, token)
                outcomes[
                    "CANCEL:" + (done["cancelReservation"]["errors"] or [{"code": "OK"}])[0]["code"]
                ] += 1
            else:
                outcomes["ABANDONED"] += 1

        handled: set[str] = set()
        checks = 0
        fresh: list[str] = []

        async def moved() -> bool:
            """The room admitted someone new, or sold out; and at every look, no more
            unused admissions than units available (oversubscription 1, 1 unit each)."""
            nonlocal checks, fresh
            unused, available = await unused_and_available()
            checks += 1
            assert unused <= available, (unused, available)
            fresh = [
                text(c)
                for c in await services.redis.zrange(keys.room_admitted, 0, -1)
                if text(c) not in handled
            ]
            return bool(fresh) or bool(await services.redis.hexists(keys.room, "soldout"))

        for _ in range(200):  # rounds: bounded by counting
            await eventually(
                moved, within=30, every=0.05, failure=lambda: f"the room stalled: {outcomes}"
            )
            if not fresh:
                break
            handled.update(fresh)
            # Someone still waiting (the last in line, far from a turn) can neither use
            # another's admission nor jump the line by joining again.
            waiting = [text(c) for c in await services.redis.zrange(keys.room_queue, -1, -1)]
            if waiting:
                (next_up,) = waiting
                score = await services.redis.zscore(keys.room_queue, next_up)
                refused = await storm_call(http, urls[0], RESERVE, {"p": pid}, tokens[next_up])
                assert refused["reserve"]["errors"] == [{"code": "NOT_ADMITTED"}]
                await join(0, next_up)
                assert await services.redis.zscore(keys.room_queue, next_up) == score
            await asyncio.gather(*(act(customer) for customer in fresh))
        else:
            pytest.fail(f"not sold out after 200 rounds: {outcomes}")

        # Everyone still waiting is told SOLD_OUT.
        still = [text(c) for c in await services.redis.zrange(keys.room_queue, 0, 4)]
        assert still
        for customer in still:
            seen = await storm_call(http, urls[1], MINE, {"p": pid}, tokens[customer])
            assert seen["myWaitingRoom"]["state"] == "SOLD_OUT"

    # Admissions went in place order: the draw for early joiners, then arrival.
    tickets = tickets_of(await services.redis.hgetall(keys.room_tickets))
    admitted = [c for c, t in tickets.items() if t.get("o")]
    assert sorted(admitted, key=lambda c: tickets[c]["o"]) == sorted(
        admitted, key=lambda c: float(tickets[c]["z"])
    )
    assert outcomes["RESERVE:OUT_OF_STOCK"] == 0, outcomes  # an admission always had a unit
    assert outcomes["CHECKOUT:OK"] == UNITS, outcomes
    assert checks > 10

    # Every unit sold (none left on hold), the stores agree, one order per customer.
    await settled(services, [product.id])
    counters = (await services.engine.counters([product.id]))[product.id]
    assert (counters.sold, counters.reserved) == (UNITS, 0)
    report = await audit(services.engine, [product.id])
    assert report.ok, report.problems
    buyers = await Order.collection(services.database).distinct("customer_id")
    assert len(buyers) == await Order.count(services.database) == UNITS

    # The servers' room recorders kept every ticket in MongoDB: the funnel adds up.
    funnel: RoomFunnel | None = None
    day = timedelta(days=1)

    async def recorded() -> bool:
        nonlocal funnel
        funnel = await room_funnel(services.database, utcnow() - day, utcnow() + day)
        return funnel.admitted == len(admitted) and funnel.reserved == reserved

    reserved = sum(1 for t in tickets.values() if t["s"] == "RESERVED")
    await eventually(recorded, within=30, every=0.2, failure=lambda: f"not recorded: {funnel}")
    assert funnel is not None
    assert (funnel.joined, funnel.bought) == (SHOPPERS + LATE, UNITS)
    assert funnel.abandoned == outcomes["LET_LAPSE"] + outcomes["RESERVE:NOT_ADMITTED"]
