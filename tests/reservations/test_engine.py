"""The engine against real Redis and MongoDB-protocol servers, with a controlled clock."""

import asyncio
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring
from pymongo.errors import PyMongoError
from redis.asyncio import Redis

from analytics import rollups
from analytics.sales import sales_stats
from catalog.service import CatalogService
from flashsale.embedded import free_port
from models import Order, Product, Reservation, ReservationStatus
from reservations import ReservationEngine, ReservationId, StockCounters
from reservations import persister as persister_module
from reservations.audit import audit
from reservations.errors import (
    CheckoutInProgress,
    IdempotencyKeyReused,
    LimitPerCustomer,
    OutOfStock,
    ProductMissing,
    ReservationExpired,
    ReservationNotActive,
    ReservationNotFound,
    SaleNotActive,
    ServiceUnavailable,
)
from reservations.keys import ProductKeys
from reservations.persister import ChangeLogPersister
from reservations.values import to_datetime
from services import Services
from tests.reservations.conftest import Clock, make_product

ANN, BOB = ObjectId(), ObjectId()


async def counters(engine: ReservationEngine, product_id: ObjectId) -> StockCounters:
    return (await engine.counters([product_id]))[product_id]


async def test_reserve_holds_stock_until_the_deadline(
    engine: ReservationEngine, clock: Clock
) -> None:
    product = await make_product(engine.database, total_stock=10)
    hold = await engine.reserve(ANN, product, 3)
    assert hold.status is ReservationStatus.ACTIVE
    assert hold.expires_at == to_datetime(clock.now + 60_000)
    assert await counters(engine, product) == StockCounters(total=10, sold=0, reserved=3)


async def test_out_of_stock_says_how_many_are_left(engine: ReservationEngine) -> None:
    product = await make_product(engine.database, total_stock=4)
    await engine.reserve(ANN, product, 3)
    with pytest.raises(OutOfStock) as refused:
        await engine.reserve(BOB, product, 2)
    assert refused.value.available == 1
    assert await counters(engine, product) == StockCounters(4, 0, 3)


async def test_limit_per_customer_counts_holds_and_purchases(engine: ReservationEngine) -> None:
    product = await make_product(engine.database, total_stock=10, max_per_customer=3)
    first = await engine.reserve(ANN, product, 2)
    await engine.checkout(first.id, ANN)
    with pytest.raises(LimitPerCustomer):
        await engine.reserve(ANN, product, 2)
    await engine.reserve(ANN, product, 1)
    with pytest.raises(LimitPerCustomer):
        await engine.reserve(ANN, product, 1)
    await engine.reserve(BOB, product, 3)  # another customer is unaffected
    assert await counters(engine, product) == StockCounters(10, 2, 4)


async def test_a_cancelled_hold_frees_the_customer_limit(engine: ReservationEngine) -> None:
    product = await make_product(engine.database, max_per_customer=2)
    hold = await engine.reserve(ANN, product, 2)
    await engine.cancel(hold.id, ANN)
    assert (await engine.reserve(ANN, product, 2)).quantity == 2


async def test_sale_window_is_enforced_at_the_clock(
    engine: ReservationEngine, clock: Clock
) -> None:
    start = to_datetime(clock.now + 10_000)
    product = await make_product(
        engine.database, sale_starts_at=start, sale_ends_at=start + timedelta(seconds=5)
    )
    with pytest.raises(SaleNotActive):
        await engine.reserve(ANN, product, 1)
    clock.advance(10)
    await engine.reserve(ANN, product, 1)
    clock.advance(5)
    with pytest.raises(SaleNotActive):
        await engine.reserve(BOB, product, 1)
    assert await counters(engine, product) == StockCounters(10, 0, 1)


async def test_unknown_product(engine: ReservationEngine) -> None:
    with pytest.raises(ProductMissing):
        await engine.reserve(ANN, ObjectId(), 1)


async def test_same_idempotency_key_returns_the_first_hold(engine: ReservationEngine) -> None:
    product = await make_product(engine.database)
    first = await engine.reserve(ANN, product, 2, "key-1")
    again = await engine.reserve(ANN, product, 2, "key-1")
    other_customer = await engine.reserve(BOB, product, 1, "key-1")
    assert again == first
    assert other_customer.id != first.id
    assert await counters(engine, product) == StockCounters(10, 0, 3)


async def test_a_key_reused_for_another_request_is_refused(engine: ReservationEngine) -> None:
    product = await make_product(engine.database)
    await engine.reserve(ANN, product, 2, "order-7")
    with pytest.raises(IdempotencyKeyReused) as refused:
        await engine.reserve(ANN, product, 3, "order-7")
    assert refused.value.field == "idempotencyKey"
    assert await counters(engine, product) == StockCounters(10, 0, 2)


async def test_concurrent_retries_with_one_key_make_one_hold(engine: ReservationEngine) -> None:
    product = await make_product(engine.database)
    holds = await asyncio.gather(*(engine.reserve(ANN, product, 1, "tap-tap") for _ in range(50)))
    assert len({hold.id for hold in holds}) == 1
    assert await counters(engine, product) == StockCounters(10, 0, 1)


async def test_fifty_shoppers_for_ten_units(engine: ReservationEngine) -> None:
    product = await make_product(engine.database, total_stock=10, max_per_customer=1)
    results = await asyncio.gather(
        *(engine.reserve(ObjectId(), product, 1) for _ in range(50)), return_exceptions=True
    )
    granted = [r for r in results if not isinstance(r, BaseException)]
    refused = [r for r in results if isinstance(r, OutOfStock)]
    assert (len(granted), len(refused)) == (10, 40)
    assert await counters(engine, product) == StockCounters(10, 0, 10)


async def test_cancel_returns_stock_once(engine: ReservationEngine) -> None:
    product = await make_product(engine.database)
    hold = await engine.reserve(ANN, product, 4)
    cancelled = await engine.cancel(hold.id, ANN)
    assert cancelled.status is ReservationStatus.CANCELLED
    with pytest.raises(ReservationNotActive):
        await engine.cancel(hold.id, ANN)
    assert await counters(engine, product) == StockCounters(10, 0, 0)


async def test_someone_elses_hold_is_not_found(engine: ReservationEngine) -> None:
    product = await make_product(engine.database)
    hold = await engine.reserve(ANN, product, 1)
    with pytest.raises(ReservationNotFound):
        await engine.cancel(hold.id, BOB)
    with pytest.raises(ReservationNotFound):
        await engine.checkout(hold.id, BOB)
    assert (await engine.cancel(hold.id, None)).status is ReservationStatus.CANCELLED  # admin


async def test_expiry_returns_stock_at_the_deadline(
    engine: ReservationEngine, clock: Clock
) -> None:
    product = await make_product(engine.database)
    hold = await engine.reserve(ANN, product, 2)
    clock.advance(59.9)
    assert await engine.expire_due([product]) == 0
    clock.advance(0.1)
    assert await engine.expire_due([product]) == 1
    assert await engine.expire_due([product]) == 0  # ends exactly once
    expired = await engine.get(hold.id)
    assert expired is not None
    assert expired.status is ReservationStatus.EXPIRED
    assert await counters(engine, product) == StockCounters(10, 0, 0)


async def test_checkout_after_the_deadline_is_refused_before_the_tick(
    engine: ReservationEngine, clock: Clock
) -> None:
    product = await make_product(engine.database)
    hold = await engine.reserve(ANN, product, 2)
    clock.advance(60)
    with pytest.raises(ReservationExpired):
        await engine.checkout(hold.id, ANN)
    assert await Order.count(engine.database) == 0
    assert await counters(engine, product) == StockCounters(10, 0, 2)  # until the tick
    await engine.expire_due([product])
    assert await counters(engine, product) == StockCounters(10, 0, 0)
    with pytest.raises(ReservationExpired):
        await engine.checkout(hold.id, ANN)


async def test_checkout_is_durable_and_retry_returns_the_same_order(
    engine: ReservationEngine,
) -> None:
    product = await make_product(engine.database, price_cents=1_999)
    hold = await engine.reserve(ANN, product, 3)
    sale = await engine.checkout(hold.id, ANN)
    again = await engine.checkout(hold.id, ANN)

    assert again.order_id == sale.order_id
    assert (sale.unit_price_cents, sale.total_cents) == (1_999, 5_997)
    stored = await Product.get(engine.database, product)
    assert stored is not None
    assert stored.sold == 3
    order = await Order.find_one(engine.database, {"reservation_id": hold.id.hold_id})
    assert order is not None
    assert order.total_cents == 5_997
    reservation = await Reservation.get(engine.database, hold.id.hold_id)
    assert reservation is not None
    assert reservation.status is ReservationStatus.COMPLETED
    assert await counters(engine, product) == StockCounters(10, 3, 0)
    with pytest.raises(ReservationNotActive):
        await engine.cancel(hold.id, ANN)


async def test_concurrent_checkouts_of_one_hold_sell_once(engine: ReservationEngine) -> None:
    product = await make_product(engine.database)
    hold = await engine.reserve(ANN, product, 2)
    results = await asyncio.gather(
        *(engine.checkout(hold.id, ANN) for _ in range(10)), return_exceptions=True
    )
    orders = {r.order_id for r in results if not isinstance(r, BaseException)}
    assert len(orders) == 1, results
    assert await Order.count(engine.database) == 1
    assert await counters(engine, product) == StockCounters(10, 2, 0)


async def test_a_completed_hold_never_expires(engine: ReservationEngine, clock: Clock) -> None:
    product = await make_product(engine.database)
    hold = await engine.reserve(ANN, product, 1)
    await engine.checkout(hold.id, ANN)
    clock.advance(3600)
    assert await engine.expire_due([product]) == 0
    assert await counters(engine, product) == StockCounters(10, 1, 0)


async def claim_only(engine: ReservationEngine, rid: ReservationId, now: int) -> None:
    """Checkout's first step alone: what a process leaves behind if it dies right after."""
    assert (await engine.store.claim(rid, now, None, "dead-process")).kind == "OK"


async def test_a_hold_mid_checkout_cannot_be_cancelled_or_expire(
    engine: ReservationEngine, clock: Clock
) -> None:
    product = await make_product(engine.database)
    hold = await engine.reserve(ANN, product, 1)
    await claim_only(engine, hold.id, clock.now)
    with pytest.raises(CheckoutInProgress):
        await engine.cancel(hold.id, ANN)
    clock.advance(120)
    assert await engine.expire_due([product]) == 0
    assert await counters(engine, product) == StockCounters(10, 0, 1)


async def test_crash_between_claim_and_transaction_is_undone(
    engine: ReservationEngine, clock: Clock
) -> None:
    product = await make_product(engine.database)
    hold = await engine.reserve(ANN, product, 2)
    # The process claimed the hold, then died before writing anything to MongoDB.
    await claim_only(engine, hold.id, clock.now)
    clock.advance(29)
    assert await engine.recover_claims([product]) == 0  # too recent: may still be running
    clock.advance(2)
    assert await engine.recover_claims([product]) == 1
    assert await Order.count(engine.database) == 0
    back = await engine.get(hold.id)
    assert back is not None
    assert back.status is ReservationStatus.ACTIVE
    clock.advance(60)  # past its original deadline: the tick ends it
    assert await engine.expire_due([product]) == 1
    assert await counters(engine, product) == StockCounters(10, 0, 0)


async def test_crash_between_transaction_and_commit_is_finished(
    engine: ReservationEngine, clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    product = await make_product(engine.database)
    hold = await engine.reserve(ANN, product, 2)

    async def die(*args: object) -> None:
        raise SystemExit("killed after the transaction")

    monkeypatch.setattr(engine.checkouts, "commit", die)
    with pytest.raises(SystemExit):
        await engine.checkout(hold.id, ANN)
    monkeypatch.undo()
    assert await Order.count(engine.database) == 1
    assert await counters(engine, product) == StockCounters(10, 0, 2)  # not yet committed
    clock.advance(31)
    assert await engine.recover_claims([product]) == 1
    assert await counters(engine, product) == StockCounters(10, 2, 0)
    stored = await Product.get(engine.database, product)
    assert stored is not None
    assert stored.sold == 2


async def test_mongodb_unreachable_at_checkout_changes_nothing(
    services: Services, engine: ReservationEngine, clock: Clock
) -> None:
    product = await make_product(engine.database)
    hold = await engine.reserve(ANN, product, 2)

    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "tests.reservations.checkout_without_mongodb",
        services.settings.redis_url or "",
        str(hold.id),
        str(clock.now),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    stdout, stderr = await asyncio.wait_for(child.communicate(), timeout=60)
    assert stdout.decode().strip() == "SERVICE_UNAVAILABLE", stderr.decode()
    assert await counters(engine, product) == StockCounters(10, 0, 2)
    still = await engine.get(hold.id)
    assert still is not None
    assert still.status is ReservationStatus.ACTIVE
    assert await Order.count(services.database) == 0
    assert (await engine.checkout(hold.id, ANN)).hold.quantity == 2  # and it can still be bought


async def test_a_checkout_whose_commit_outcome_is_unknown_is_never_put_back(
    engine: ReservationEngine,
    persister: ChangeLogPersister,
    clock: Clock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The transaction commits in MongoDB but its reply is lost (a timeout, a dropped
    connection): the hold must not go back on sale, or its units could be sold twice."""
    product = await make_product(engine.database, total_stock=4, max_per_customer=2)
    retried = await engine.reserve(ANN, product, 2)
    abandoned = await engine.reserve(BOB, product, 2)
    record_sale = engine.ledger.record_sale

    async def committed_but_reply_lost(hold: Any) -> Any:
        await record_sale(hold)  # the real transaction, committed
        lost = PyMongoError("connection closed while committing")
        lost._add_error_label("UnknownTransactionCommitResult")
        raise lost

    monkeypatch.setattr(engine.ledger, "record_sale", committed_but_reply_lost)
    for hold, owner in ((retried, ANN), (abandoned, BOB)):
        with pytest.raises(ServiceUnavailable):
            await engine.checkout(hold.id, owner)
    monkeypatch.undo()

    assert await counters(engine, product) == StockCounters(4, 0, 4)  # still held
    clock.advance(61)  # past both deadlines: neither expires, nothing goes back on sale
    assert await engine.expire_due([product]) == 0
    with pytest.raises(OutOfStock):
        await engine.reserve(ObjectId(), product, 1)

    sale = await engine.checkout(retried.id, ANN)  # the shopper retries: the same order
    order = await Order.find_one(engine.database, {"reservation_id": retried.id.hold_id})
    assert order is not None
    assert sale.order_id == order.id
    clock.advance(30)  # nobody retries the other: the recovery sweep finds its order
    assert await engine.recover_claims([product]) == 1
    assert await counters(engine, product) == StockCounters(4, 4, 0)
    assert await Order.count(engine.database) == 2
    await persister.run_once([product])
    report = await audit(engine, [product])
    assert report.ok, report.problems


async def test_redis_lost_mid_sale_is_rebuilt_from_mongodb(
    services: Services, engine: ReservationEngine, persister: ChangeLogPersister
) -> None:
    product = await make_product(engine.database, total_stock=10, max_per_customer=5)
    sold = await engine.reserve(ANN, product, 3)
    await engine.checkout(sold.id, ANN)
    held = await engine.reserve(BOB, product, 2)
    await persister.run_once([product])
    keys = ProductKeys(product)
    await services.redis.delete(
        keys.stock, keys.holds, keys.expiry, keys.customers, keys.claims, keys.log, keys.sold
    )

    assert await engine.load_missing([product]) == 1
    assert await counters(engine, product) == StockCounters(10, 3, 2)
    with pytest.raises(LimitPerCustomer):  # ANN's purchase still counts toward the limit
        await engine.reserve(ANN, product, 3)
    await engine.checkout(held.id, BOB)  # the recorded hold survived
    await engine.reserve(ObjectId(), product, 5)
    with pytest.raises(OutOfStock):
        await engine.reserve(ObjectId(), product, 1)
    await persister.run_once([product])
    report = await audit(engine, [product])
    assert report.ok, report.problems


class FindLog(monitoring.CommandListener):
    """The collections MongoDB was asked to find in, one entry per command."""

    def __init__(self) -> None:
        self.finds: list[str] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "find":
            self.finds.append(str(event.command["find"]))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def test_counters_of_cold_products_load_them_in_one_read_of_each_collection(
    services: Services, engine: ReservationEngine, persister: ChangeLogPersister
) -> None:
    """A list of products Redis lacks (a fresh or emptied Redis) was loaded one product at
    a time, three reads each: 15 for five products."""
    products = [await make_product(services.database, total_stock=10 + n) for n in range(5)]
    sold = await engine.reserve(ANN, products[0], 2)
    await engine.checkout(sold.id, ANN)
    held = await engine.reserve(BOB, products[1], 3)
    await persister.run_once(products)
    for product in products:
        keys = ProductKeys(product)
        await services.redis.delete(
            keys.stock, keys.holds, keys.expiry, keys.customers, keys.claims, keys.sold
        )
    log = FindLog()
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        services.settings.mongodb_uri, tz_aware=True, event_listeners=[log]
    )
    counted = ReservationEngine(
        services.redis, client[services.settings.mongodb_db], default_hold_seconds=60
    )
    nowhere = ObjectId()

    found = await counted.counters([*products, nowhere])

    assert sorted(log.finds) == ["orders", "products", "reservations"]
    assert found == {
        products[0]: StockCounters(10, 2, 0),
        products[1]: StockCounters(11, 0, 3),
        **{product: StockCounters(10 + n, 0, 0) for n, product in enumerate(products) if n > 1},
    }
    assert (await counted.checkout(held.id, BOB)).hold.id == held.id  # its hold came back
    await client.close()


async def test_expiry_after_the_server_was_down(
    services: Services, engine: ReservationEngine, persister: ChangeLogPersister, clock: Clock
) -> None:
    product = await make_product(engine.database)
    hold = await engine.reserve(ANN, product, 2)
    await persister.run_once([product])
    clock.advance(3600)  # nothing ran during this hour
    restarted = ReservationEngine(
        services.redis,
        services.mongo[services.settings.mongodb_db],
        default_hold_seconds=60,
        clock=clock,
    )
    assert await restarted.expire_due([product]) == 1
    await persister.run_once([product])
    stored = await Reservation.get(services.database, hold.id.hold_id)
    assert stored is not None
    assert stored.status is ReservationStatus.EXPIRED
    assert (await audit(engine, [product])).ok


async def test_persister_records_every_state_and_audit_holds(
    engine: ReservationEngine, persister: ChangeLogPersister, clock: Clock
) -> None:
    product = await make_product(engine.database, total_stock=20)
    a = await engine.reserve(ANN, product, 2, "a")
    b = await engine.reserve(BOB, product, 3)
    c = await engine.reserve(ObjectId(), product, 1)
    await engine.cancel(a.id, ANN)
    await engine.checkout(b.id, BOB)
    clock.advance(61)
    await engine.expire_due([product])
    await persister.run_once([product])
    await persister.run_once([product])  # idempotent

    statuses = {r.id: r.status for r in await Reservation.find_all(engine.database)}
    assert statuses == {
        a.id.hold_id: ReservationStatus.CANCELLED,
        b.id.hold_id: ReservationStatus.COMPLETED,
        c.id.hold_id: ReservationStatus.EXPIRED,
    }
    report = await audit(engine, [product])
    assert report.ok, report.problems
    assert await engine.redis.hlen(ProductKeys(product).holds) == 0  # ended holds forgotten
    assert await engine.redis.xlen(ProductKeys(product).log) == 0  # acknowledged and trimmed


async def test_the_backlog_counts_every_state_mongodb_has_not_recorded(
    services: Services,
    engine: ReservationEngine,
    persister: ChangeLogPersister,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A hold reserved and cancelled before the persister ran leaves no units held and no
    ACTIVE record, and no record at all: only the backlog says MongoDB is behind."""
    product = await make_product(services.database)
    assert await persister.backlog([product]) == 0  # no log yet
    hold = await engine.reserve(ANN, product, 1)
    await engine.cancel(hold.id, ANN)
    assert await counters(engine, product) == StockCounters(10, 0, 0)
    assert await Reservation.count(services.database) == 0
    assert await persister.backlog([product]) == 2  # ACTIVE, then CANCELLED: never read

    log = ProductKeys(product).log
    await services.redis.xgroup_create(log, "persister", id="0")
    await services.redis.xreadgroup("persister", "died", {log: ">"}, count=1)
    assert await persister.backlog([product]) == 2  # one read and never acknowledged

    await persister.run_once([product])  # records the other entry
    assert await persister.backlog([product]) == 1  # the dead reader's is still pending
    monkeypatch.setattr(persister_module, "STALE_PENDING_MS", 0)
    await persister.run_once([product])  # claims it (after 30 s, were it not patched)
    assert await persister.backlog([product]) == 0
    recorded = await Reservation.get(services.database, hold.id.hold_id)
    assert recorded is not None
    assert recorded.status is ReservationStatus.CANCELLED


async def test_checkout_and_the_persister_keep_the_daily_rollups_exact(
    engine: ReservationEngine, persister: ChangeLogPersister, clock: Clock
) -> None:
    product = await make_product(engine.database, total_stock=20, price_cents=1_999)
    recorded_first = await engine.reserve(ANN, product, 2)
    await persister.run_once([product])  # this hold is in MongoDB before its checkout
    await engine.checkout(recorded_first.id, ANN)  # ACTIVE -> COMPLETED in the rollup
    bought_at_once = await engine.reserve(BOB, product, 3)
    await engine.checkout(bought_at_once.id, BOB)  # not recorded yet: created COMPLETED
    cancelled = await engine.reserve(ObjectId(), product, 1)
    await engine.cancel(cancelled.id, None)
    await engine.reserve(ObjectId(), product, 1)  # left to expire
    clock.advance(61)
    await engine.expire_due([product])
    await persister.run_once([product])
    await persister.run_once([product])  # nothing left: the rollups must not move

    database = engine.database
    assert await rollups.check(database) == []
    day = rollups.day_of(to_datetime(clock.now))
    kept = await sales_stats(database, day, day + timedelta(days=1))  # all from the rollups
    assert kept == await sales_stats(database, day, day + timedelta(days=1), rollups=False)
    assert (kept.totals.revenue_cents, kept.totals.units, kept.totals.orders) == (9_995, 5, 2)
    funnel = kept.funnel
    assert (funnel.created, funnel.active, funnel.completed, funnel.expired, funnel.cancelled) == (
        4,
        0,
        2,
        1,
        1,
    )


async def test_admin_cannot_drop_stock_below_sold_and_held(
    services: Services, engine: ReservationEngine
) -> None:
    product = await make_product(engine.database, total_stock=10)
    sold = await engine.reserve(ANN, product, 3)
    await engine.checkout(sold.id, ANN)
    await engine.reserve(BOB, product, 4)
    catalog = CatalogService(engine.database, stock=engine)
    from catalog.errors import StockBelowCommitted

    with pytest.raises(StockBelowCommitted) as refused:
        await catalog.update(product, {"total_stock": 6})
    assert refused.value.committed == 7
    assert await counters(engine, product) == StockCounters(10, 3, 4)
    await catalog.update(product, {"total_stock": 7})
    assert await counters(engine, product) == StockCounters(7, 3, 4)
    await catalog.restock(product, 5)
    assert await counters(engine, product) == StockCounters(12, 3, 4)
    await catalog.update(
        product, {"max_per_customer": 1, "sale_ends_at": datetime(2000, 1, 1, tzinfo=UTC)}
    )
    with pytest.raises(SaleNotActive):
        await engine.reserve(ObjectId(), product, 1)


async def test_stock_cannot_drop_below_sold_and_held_while_redis_lacks_the_product(
    services: Services, engine: ReservationEngine, persister: ChangeLogPersister
) -> None:
    """Redis lost its data and has not reloaded the product yet: a drop in total stock is
    still checked against the sale and the hold MongoDB recorded (the reload brings the
    hold back, so a total below them would leave sold + reserved > total)."""
    product = await make_product(engine.database, total_stock=10)
    sold = await engine.reserve(ANN, product, 3)
    await engine.checkout(sold.id, ANN)
    await engine.reserve(BOB, product, 4)
    await persister.run_once([product])
    keys = ProductKeys(product)
    await services.redis.delete(
        keys.stock, keys.holds, keys.expiry, keys.customers, keys.claims, keys.log, keys.sold
    )
    catalog = CatalogService(engine.database, stock=engine)
    from catalog.errors import StockBelowCommitted

    with pytest.raises(StockBelowCommitted) as refused:
        await catalog.update(product, {"total_stock": 6})
    assert refused.value.committed == 7
    stored = await Product.get(services.database, product)
    assert stored is not None
    assert stored.total_stock == 10
    assert await counters(engine, product) == StockCounters(10, 3, 4)
    report = await audit(engine, [product])
    assert report.ok, report.problems


async def test_redis_down_refuses_cleanly_and_changes_nothing(
    services: Services, clock: Clock
) -> None:
    product = await make_product(services.database)
    unreachable = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    cut_off = ReservationEngine(
        unreachable,
        services.mongo[services.settings.mongodb_db],
        default_hold_seconds=60,
        clock=clock,
    )
    try:
        with pytest.raises(ServiceUnavailable) as refused:
            await cut_off.reserve(ANN, product, 1)
        with pytest.raises(ServiceUnavailable):
            await cut_off.checkout(ReservationId(product, ObjectId()), ANN)
    finally:
        await unreachable.aclose()
    assert refused.value.code == "SERVICE_UNAVAILABLE"
    assert await Reservation.count(services.database) == 0
    assert await Order.count(services.database) == 0
