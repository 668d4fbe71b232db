"""The interleavings that broke the engine (issue 12), each on real Redis and MongoDB-protocol
servers: late and duplicate commits, checkouts racing one another, reused idempotency keys,
poisoned change-log entries, cancels after the deadline."""

import asyncio
import random

import pytest
from bson import ObjectId
from prometheus_client import REGISTRY

from models import Order, Reservation, ReservationStatus, ensure_indexes
from reservations import ReservationEngine, StockCounters
from reservations.audit import audit
from reservations.errors import CheckoutInProgress, ReservationExpired
from reservations.keys import ProductKeys
from reservations.persister import ChangeLogPersister
from services import Services
from tests.reservations.conftest import Clock, make_product

ANN, BOB = ObjectId(), ObjectId()


async def counters(engine: ReservationEngine, product_id: ObjectId) -> StockCounters:
    return (await engine.counters([product_id]))[product_id]


async def test_a_late_commit_after_the_hold_was_forgotten_counts_nothing(
    engine: ReservationEngine, persister: ChangeLogPersister
) -> None:
    """The persister records a COMPLETED hold and drops it from Redis; a duplicate commit
    arriving after that (a concurrent checkout of the same hold) used to take the "hold
    missing" branch and add to sold again."""
    product = await make_product(engine.database, total_stock=3)
    hold = await engine.reserve(ANN, product, 1)
    sale = await engine.checkout(hold.id, ANN)
    await persister.run_once([product])
    assert await engine.redis.hlen(ProductKeys(product).holds) == 0  # forgotten

    await engine.commit(sale.hold)  # late duplicate
    await engine.commit(sale.hold)

    assert await counters(engine, product) == StockCounters(3, 1, 0)
    report = await audit(engine, [product])
    assert report.ok, report.problems


async def test_concurrent_checkouts_with_the_persister_running_sell_each_hold_once(
    engine: ReservationEngine, persister: ChangeLogPersister
) -> None:
    """20 customers each send 5 checkouts of their hold at once while the persister keeps
    recording and forgetting ended holds."""
    product = await make_product(engine.database, total_stock=20, max_per_customer=1)
    customers = [ObjectId() for _ in range(20)]
    holds = [await engine.reserve(customer, product, 1) for customer in customers]
    stop = asyncio.Event()

    async def persist() -> None:
        while not stop.is_set():
            await persister.run_once([product])
            await asyncio.sleep(0)  # yield to the checkouts between batches

    calls = [
        engine.checkout(hold.id, customer)
        for hold, customer in zip(holds, customers, strict=True)
        for _ in range(5)
    ]
    random.Random(3).shuffle(calls)
    background = asyncio.create_task(persist())
    results = await asyncio.gather(*calls, return_exceptions=True)
    stop.set()
    await background
    await persister.run_once([product])

    unexpected = [r for r in results if isinstance(r, BaseException)]
    assert all(isinstance(r, CheckoutInProgress) for r in unexpected), unexpected
    orders = {r.hold.id: r.order_id for r in results if not isinstance(r, BaseException)}
    assert set(orders) == {hold.id for hold in holds}  # each bought, by one order
    assert await Order.count(engine.database) == 20
    assert await counters(engine, product) == StockCounters(20, 20, 0)
    report = await audit(engine, [product])
    assert report.ok, report.problems


async def test_a_second_checkout_cannot_undo_the_first_ones_claim(
    engine: ReservationEngine, clock: Clock
) -> None:
    """A duplicate checkout that fails must not put back a hold another checkout claimed:
    the hold could then be cancelled or expire while the first one sells it."""
    product = await make_product(engine.database)
    hold = await engine.reserve(ANN, product, 1)
    assert (await engine.store.claim(hold.id, clock.now, ANN, "first")).kind == "OK"
    with pytest.raises(CheckoutInProgress):
        await engine.checkout(hold.id, ANN)
    assert not await engine.store.unclaim(hold.id, "someone-else")
    with pytest.raises(CheckoutInProgress):
        await engine.cancel(hold.id, ANN)
    clock.advance(120)
    assert await engine.expire_due([product]) == 0
    assert await counters(engine, product) == StockCounters(10, 0, 1)


async def test_a_key_reused_on_another_product_is_a_distinct_hold_and_both_are_recorded(
    services: Services, engine: ReservationEngine, persister: ChangeLogPersister
) -> None:
    """The key is the customer's per product: reusing it on product B made the persister's
    batch fail on a unique index, and nobody's holds of B were recorded."""
    product_a, product_b = (
        await make_product(engine.database),
        await make_product(engine.database, total_stock=30),
    )
    await ensure_indexes(engine.database)
    on_a = await engine.reserve(ANN, product_a, 1, "same-key")
    on_b = await engine.reserve(ANN, product_b, 1, "same-key")
    others = [await engine.reserve(ObjectId(), product_b, 1, "same-key") for _ in range(20)]
    assert on_a.id != on_b.id
    await persister.run_once([product_a, product_b])

    recorded = {r.id for r in await Reservation.find_all(services.database)}
    assert recorded == {hold.id.hold_id for hold in [on_a, on_b, *others]}
    sale = await engine.checkout(on_b.id, ANN)
    assert sale.hold.id == on_b.id
    await persister.run_once([product_a, product_b])
    report = await audit(engine, [product_a, product_b])
    assert report.ok, report.problems


async def test_the_legacy_unique_key_index_is_dropped(
    engine: ReservationEngine, persister: ChangeLogPersister
) -> None:
    reservations = Reservation.collection(engine.database)
    await reservations.create_index(
        [("customer_id", 1), ("idempotency_key", 1)],
        unique=True,
        partialFilterExpression={"idempotency_key": {"$type": "string"}},
    )
    await ensure_indexes(engine.database)
    assert "customer_id_1_idempotency_key_1" not in await reservations.index_information()


async def test_a_poisoned_change_log_entry_is_skipped_and_counted(
    engine: ReservationEngine, persister: ChangeLogPersister
) -> None:
    product = await make_product(engine.database)
    before = await engine.reserve(ANN, product, 1)
    await engine.redis.xadd(ProductKeys(product).log, {"e": "ACTIVE", "r": "not-an-id"})
    after = await engine.reserve(BOB, product, 1)
    poisoned = REGISTRY.get_sample_value("flashsale_persister_poisoned_total") or 0.0

    assert await persister.run_once([product]) == 3
    recorded = {r.id for r in await Reservation.find_all(engine.database)}
    assert recorded == {before.id.hold_id, after.id.hold_id}
    assert REGISTRY.get_sample_value("flashsale_persister_poisoned_total") == poisoned + 1
    assert await engine.redis.xlen(ProductKeys(product).log) == 0  # nothing retried forever


async def test_cancel_after_the_deadline_is_expired_like_checkout(
    engine: ReservationEngine, clock: Clock
) -> None:
    product = await make_product(engine.database)
    hold = await engine.reserve(ANN, product, 2)
    clock.advance(60.02)  # 20 ms past the deadline, before any expiry tick
    with pytest.raises(ReservationExpired):
        await engine.cancel(hold.id, ANN)
    with pytest.raises(ReservationExpired):
        await engine.checkout(hold.id, ANN)
    still = await engine.get(hold.id)
    assert still is not None
    assert still.status is ReservationStatus.ACTIVE  # unchanged: the tick ends it
    assert await engine.expire_due([product]) == 1
    assert await counters(engine, product) == StockCounters(10, 0, 0)


async def test_hold_ids_are_unguessable(engine: ReservationEngine) -> None:
    product = await make_product(engine.database, total_stock=100, max_per_customer=100)
    ids = [int(str((await engine.reserve(ANN, product, 1)).id.hold_id), 16) for _ in range(20)]
    gaps = {b - a for a, b in zip(ids, ids[1:], strict=False)}
    assert len(gaps) == 19  # no counter: each id is unrelated to the one before
    assert all(abs(gap) > 2**64 for gap in gaps)


async def test_order_ids_are_unguessable(engine: ReservationEngine) -> None:
    """Checked out one at a time (an order transaction each) and all at once (one
    transaction for the batch): no order id is another's plus one."""
    product = await make_product(engine.database, total_stock=100, max_per_customer=100)
    alone = [
        await engine.checkout((await engine.reserve(ANN, product, 1)).id, ANN) for _ in range(10)
    ]
    holds = [await engine.reserve(BOB, product, 1) for _ in range(10)]
    together = await asyncio.gather(*(engine.checkout(hold.id, BOB) for hold in holds))
    for sales in (alone, together):
        ids = [int(str(sale.order_id), 16) for sale in sales]
        gaps = {b - a for a, b in zip(ids, ids[1:], strict=False)}
        assert len(gaps) == 9  # no counter: each id is unrelated to the one before
        assert all(abs(gap) > 2**64 for gap in gaps)
