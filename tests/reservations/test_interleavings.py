"""Randomized interleavings over HTTP against two real server processes with their
background loops on (expiry, persister, recovery, reconciler): shoppers race their own
holds — double and triple checkouts through both processes, checkout against cancel,
against expiry, retries after client time-outs, one idempotency key on two products — and
then the full audit, and what every client was told is checked against both stores.

Each seed is one reproducible schedule of choices (the timing between processes is real,
so each run also interleaves differently). `INTERLEAVING_SEEDS=1-40` runs more of them."""

import asyncio
import os
import random
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from bson import ObjectId

from catalog.validation import HOLD_SECONDS_MIN, ProductDraft
from models import Order, Reservation, ReservationStatus
from reservations import ReservationEngine
from reservations.audit import audit
from reservations.persister import ChangeLogPersister
from services import Services
from tests.processes import ServerProcess, running, shared_env
from tests.reservations.conftest import make_product
from tests.reservations.storm import CANCEL, CHECKOUT, customer_token, settled

RESERVE = """mutation R($p: ID!, $q: Int!, $k: String) {
  reserve(productId: $p, quantity: $q, idempotencyKey: $k) {
    reservation { id expiresAt } errors { code } } }"""
SHOPPERS = 40
ROUNDS = 3
# Every answer a shopper may get in these races; anything else (SERVICE_UNAVAILABLE, an
# internal error, a GraphQL error) fails the test.
EXPECTED = {
    "OK",
    "OUT_OF_STOCK",
    "LIMIT_PER_CUSTOMER",
    "CHECKOUT_IN_PROGRESS",
    "RESERVATION_EXPIRED",
    "RESERVATION_NOT_ACTIVE",
    "TIMED_OUT",
}


def seeds() -> list[int]:
    spec = os.environ.get("INTERLEAVING_SEEDS", "1-3")
    first, _, last = spec.partition("-")
    return list(range(int(first), int(last or first) + 1))


@dataclass
class Told:
    """What the clients were told about one hold."""

    orders: set[str] = field(default_factory=set)
    cancelled: bool = False


@dataclass
class Race:
    urls: list[str]
    http: httpx.AsyncClient
    rng: random.Random
    told: dict[str, Told] = field(default_factory=lambda: defaultdict(Told))
    answers: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    async def send(
        self, query: str, variables: dict[str, Any], token: str, *, patience: float = 60
    ) -> dict[str, Any] | None:
        url = self.rng.choice(self.urls)
        try:
            response = await self.http.post(
                f"{url}/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {token}"},
                timeout=patience,
            )
        except httpx.TimeoutException:
            self.answers["TIMED_OUT"] += 1
            return None
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        assert "errors" not in body, body
        payload: dict[str, Any] = next(iter(body["data"].values()))
        code = (payload["errors"] or [{"code": "OK"}])[0]["code"]
        self.answers[code] += 1
        return payload

    async def reserve(
        self,
        token: str,
        product: ObjectId,
        key: str | None = None,
        *,
        quantity: int = 1,
        patience: float = 60,
    ) -> dict[str, Any] | None:
        variables = {"p": str(product), "q": quantity, "k": key}
        payload = await self.send(RESERVE, variables, token, patience=patience)
        reservation = payload["reservation"] if payload else None
        if reservation is not None:
            self.told[reservation["id"]]
        return reservation

    async def checkout(self, token: str, hold: str, *, patience: float = 60) -> None:
        payload = await self.send(CHECKOUT, {"r": hold}, token, patience=patience)
        if payload and payload["order"]:
            self.told[hold].orders.add(payload["order"]["id"])

    async def cancel(self, token: str, hold: str) -> None:
        payload = await self.send(CANCEL, {"r": hold}, token)
        if payload and payload["reservation"]:
            self.told[hold].cancelled = True

    async def at_deadline(self, reservation: dict[str, Any], jitter: float) -> None:
        """Wait for the moment this hold's deadline (plus `jitter`) comes, to race it."""
        deadline = datetime.fromisoformat(reservation["expiresAt"]).timestamp()
        await asyncio.sleep(max(0.0, deadline - time.time() + jitter))

    async def shopper(self, token: str, products: list[ObjectId]) -> None:
        for _ in range(ROUNDS):
            product = self.rng.choice(products)
            scenario = self.rng.choice(
                ["double", "double", "versus_cancel", "versus_expiry", "retry", "key_reuse"]
            )
            if scenario == "retry":  # the client gives up on its call, then retries it
                key, quantity = uuid.uuid4().hex, self.rng.choice([1, 2])
                first = await self.reserve(token, product, key, quantity=quantity, patience=0.005)
                reservation = await self.reserve(token, product, key, quantity=quantity)
                if first and reservation:
                    assert first["id"] == reservation["id"]  # the same hold, not a second
                if reservation:
                    await self.checkout(token, reservation["id"], patience=0.005)
                    await self.checkout(token, reservation["id"])
                continue
            if scenario == "key_reuse":  # one key on two products: two distinct holds
                key = uuid.uuid4().hex
                holds = [await self.reserve(token, p, key) for p in self.rng.sample(products, 2)]
                for reservation in holds:
                    if reservation and self.rng.random() < 0.5:
                        await self.checkout(token, reservation["id"])
                continue
            reservation = await self.reserve(token, product, quantity=self.rng.choice([1, 1, 2]))
            if reservation is None:
                continue
            hold = reservation["id"]
            if scenario == "double":
                calls = [self.checkout(token, hold) for _ in range(self.rng.randint(2, 4))]
            elif scenario == "versus_cancel":
                calls = [self.checkout(token, hold), self.cancel(token, hold)]
                self.rng.shuffle(calls)
            else:
                await self.at_deadline(reservation, self.rng.uniform(-0.3, 0.3))
                calls = [self.checkout(token, hold), self.cancel(token, hold)]
            await asyncio.gather(*calls)


async def test_settled_waits_until_every_granted_hold_is_recorded(
    services: Services, engine: ReservationEngine, persister: ChangeLogPersister
) -> None:
    """The check after the race reads MongoDB's records once the holds settled. A hold
    reserved and cancelled within one persister tick leaves no units held and no ACTIVE
    record, only two log entries: settling must wait for them (it did not, and the race
    failed with "granted but never recorded" when its last call was such a cancel)."""
    product = await make_product(services.database)
    hold = await engine.reserve(ObjectId(), product, 1)
    await engine.cancel(hold.id, hold.customer_id)
    with pytest.raises(AssertionError, match="2 log entries unrecorded"):
        await settled(services, [product], within=0.5)  # nothing persists in this process

    await persister.run_once([product])
    await settled(services, [product])
    recorded = await Reservation.get(services.database, hold.id.hold_id)
    assert recorded is not None
    assert recorded.status is ReservationStatus.CANCELLED


@pytest.fixture(scope="module")
def two_servers(servers: dict[str, str], services: Services) -> Iterator[list[ServerProcess]]:
    with running(shared_env(servers, services.settings.mongodb_db), 2) as started:
        yield started


@pytest.mark.parametrize("seed", seeds())
async def test_random_interleavings_keep_every_invariant(
    seed: int, services: Services, two_servers: list[ServerProcess]
) -> None:
    rng = random.Random(seed)
    products: list[ObjectId] = []
    for n in range(3):
        created = await services.catalog.create(
            ProductDraft.parse(
                name=f"Race {seed}-{n}",
                price=Decimal("5"),
                total_stock=rng.choice([8, 15, 25]),
                max_per_customer=4,
                hold_seconds=HOLD_SECONDS_MIN,
            )
        )
        assert created.id is not None
        products.append(created.id)
    tokens = [await customer_token(services) for _ in range(SHOPPERS)]
    limits = httpx.Limits(max_connections=SHOPPERS * 4)
    async with httpx.AsyncClient(limits=limits) as http:
        race = Race([server.url for server in two_servers], http, rng)
        async with asyncio.TaskGroup() as shoppers:
            for token in tokens:
                shoppers.create_task(race.shopper(token, products))

    assert set(race.answers) <= EXPECTED, dict(race.answers)
    assert race.answers["OK"] > SHOPPERS  # the races really ran

    await settled(services, products)
    report = await audit(services.engine, products)
    assert report.ok, report.problems
    recorded = {
        str(r.product_id) + str(r.id): r for r in await Reservation.find_all(services.database)
    }
    orders = {str(o.reservation_id): str(o.id) for o in await Order.find_all(services.database)}
    for hold, told in race.told.items():
        assert hold in recorded, f"hold {hold} was granted but never recorded"
        status = recorded[hold].status
        assert len(told.orders) <= 1, f"{hold}: several orders {told.orders}"
        assert not (told.orders and told.cancelled), f"{hold}: both bought and cancelled"
        if told.orders:
            assert status is ReservationStatus.COMPLETED
            assert told.orders == {orders[hold[24:]]}
        if told.cancelled:
            assert status is ReservationStatus.CANCELLED
