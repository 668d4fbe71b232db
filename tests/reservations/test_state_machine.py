"""Hypothesis drives the engine through random reserve / cancel / checkout / expiry / time
steps and compares it with a plain Python model after every step."""

import asyncio
from dataclasses import dataclass

from bson import ObjectId
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule
from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from core.settings import Settings
from models import Product, ReservationStatus
from reservations import ReservationEngine, ReservationId
from reservations.errors import (
    LimitPerCustomer,
    OutOfStock,
    ReservationError,
    ReservationExpired,
    ReservationNotActive,
)
from tests.reservations.conftest import Clock

TOTAL, LIMIT, HOLD_MS = 6, 3, 60_000
CUSTOMERS = [ObjectId() for _ in range(3)]


@dataclass
class ModelHold:
    customer: ObjectId
    quantity: int
    expires: int
    status: ReservationStatus = ReservationStatus.ACTIVE


def test_engine_matches_the_model(settings: Settings) -> None:
    # Hypothesis runs synchronously, so the engine gets its own loop and its own clients.
    loop = asyncio.new_event_loop()
    run = loop.run_until_complete
    redis = Redis.from_url(str(settings.redis_url))
    mongo: AsyncMongoClient = AsyncMongoClient(  # type: ignore[type-arg]
        str(settings.mongodb_uri), tz_aware=True
    )
    database = mongo[f"{settings.mongodb_db}_model"]

    class EngineMachine(RuleBasedStateMachine):
        @initialize()
        def setup(self) -> None:
            self.clock = Clock()
            self.engine = ReservationEngine(
                redis, database, default_hold_seconds=HOLD_MS // 1000, clock=self.clock
            )
            self.product = ObjectId()
            product = {
                "_id": self.product,
                "name": "Model",
                "price_cents": 100,
                "sold": 0,
                "total_stock": TOTAL,
                "max_per_customer": LIMIT,
            }
            run(Product.collection(database).insert_one(product))
            self.holds: dict[ReservationId, ModelHold] = {}
            self.sold = 0
            self.bought: dict[ObjectId, int] = {}

        def reserved(self) -> int:
            return sum(
                h.quantity for h in self.holds.values() if h.status is ReservationStatus.ACTIVE
            )

        def committed(self, customer: ObjectId) -> int:
            held = sum(
                h.quantity
                for h in self.holds.values()
                if h.customer == customer and h.status is ReservationStatus.ACTIVE
            )
            return held + self.bought.get(customer, 0)

        @rule(customer=st.sampled_from(CUSTOMERS), quantity=st.integers(1, 4))
        def reserve(self, customer: ObjectId, quantity: int) -> None:
            try:
                hold = run(self.engine.reserve(customer, self.product, quantity))
            except LimitPerCustomer:
                assert self.committed(customer) + quantity > LIMIT
                return
            except OutOfStock as error:
                assert self.committed(customer) + quantity <= LIMIT
                assert error.available == TOTAL - self.sold - self.reserved() < quantity  # noqa: PT017
                return
            assert self.committed(customer) + quantity <= LIMIT
            assert quantity <= TOTAL - self.sold - self.reserved()
            self.holds[hold.id] = ModelHold(customer, quantity, self.clock.now + HOLD_MS)

        def _pick(self, data: st.DataObject) -> tuple[ReservationId, ModelHold] | None:
            if not self.holds:
                return None
            # In the order they were made: ids are random, so sorting them would make the same
            # draws pick other holds when Hypothesis replays an example.
            rid = data.draw(st.sampled_from(list(self.holds)))
            return rid, self.holds[rid]

        @rule(data=st.data())
        def cancel(self, data: st.DataObject) -> None:
            picked = self._pick(data)
            if picked is None:
                return
            rid, hold = picked
            try:
                run(self.engine.cancel(rid, hold.customer))
            except ReservationError as error:
                # Past its deadline a hold has expired, whether or not the tick has run
                # (the tick ends it later): the same answer checkout gives.
                late = hold.status is ReservationStatus.ACTIVE and self.clock.now >= hold.expires
                assert hold.status is not ReservationStatus.ACTIVE or late
                expected = (
                    ReservationExpired
                    if late or hold.status is ReservationStatus.EXPIRED
                    else ReservationNotActive
                )
                assert isinstance(error, expected)  # noqa: PT017 - the model decides which
                return
            assert hold.status is ReservationStatus.ACTIVE
            assert self.clock.now < hold.expires
            hold.status = ReservationStatus.CANCELLED

        @rule(data=st.data())
        def checkout(self, data: st.DataObject) -> None:
            picked = self._pick(data)
            if picked is None:
                return
            rid, hold = picked
            try:
                run(self.engine.checkout(rid, hold.customer))
            except ReservationError:
                assert hold.status is not ReservationStatus.ACTIVE or self.clock.now >= hold.expires
                return
            if hold.status is ReservationStatus.ACTIVE:
                hold.status = ReservationStatus.COMPLETED
                self.sold += hold.quantity
                self.bought[hold.customer] = self.bought.get(hold.customer, 0) + hold.quantity
            else:
                assert hold.status is ReservationStatus.COMPLETED  # a retry: same order

        @rule(seconds=st.sampled_from([1, 30, 59, 61]))
        def time_passes(self, seconds: int) -> None:
            self.clock.advance(seconds)

        @rule()
        def expiry_tick(self) -> None:
            expired = run(self.engine.expire_due([self.product]))
            due = [
                h
                for h in self.holds.values()
                if h.status is ReservationStatus.ACTIVE and h.expires <= self.clock.now
            ]
            assert expired == len(due)
            for hold in due:
                hold.status = ReservationStatus.EXPIRED

        @invariant()
        def counters_match(self) -> None:
            if not hasattr(self, "product"):
                return
            counters = run(self.engine.counters([self.product]))[self.product]
            assert (counters.total, counters.sold, counters.reserved) == (
                TOTAL,
                self.sold,
                self.reserved(),
            )
            assert counters.sold + counters.reserved <= counters.total

    machine = EngineMachine.TestCase
    machine.settings = hypothesis_settings(
        max_examples=50,
        stateful_step_count=30,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow],
    )
    try:
        machine().runTest()
    finally:
        run(mongo.drop_database(database.name))
        run(mongo.close())
        run(redis.aclose())
        loop.close()
