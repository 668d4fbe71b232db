"""`flashsale reconcile` and the service's own reconciliation (reservations/reconcile.py)
repair drift between Redis and MongoDB from MongoDB as the system of record, and a dry
run only reports: each kind of drift it promises to repair, made by hand on real servers."""

from datetime import timedelta

from bson import ObjectId

from models import Order, Reservation, ReservationStatus
from reservations import ReservationEngine, StockCounters
from reservations.audit import audit
from reservations.checkout import ABANDONED_CLAIM_MS
from reservations.keys import ProductKeys
from reservations.persister import ChangeLogPersister
from reservations.reconcile import Reconciler
from reservations.values import Hold, ReservationId, to_datetime
from tests.reservations.conftest import Clock, make_product

ANN, BOB, CAT = ObjectId(), ObjectId(), ObjectId()


async def counters(engine: ReservationEngine, product_id: ObjectId) -> StockCounters:
    return (await engine.counters([product_id]))[product_id]


async def statuses(engine: ReservationEngine) -> dict[ObjectId, ReservationStatus]:
    return {r.id: r.status for r in await Reservation.find_all(engine.database)}


async def test_reconcile_repairs_each_drift_and_a_dry_run_changes_nothing(
    engine: ReservationEngine, persister: ChangeLogPersister, clock: Clock
) -> None:
    sales = await make_product(engine.database, total_stock=10)
    holds = await make_product(engine.database, total_stock=10)
    redis, sales_keys = engine.redis, ProductKeys(sales)
    # A sale counted twice in Redis's counter (not in its sold record), and a sale MongoDB
    # recorded that Redis never counted (its commit did not run).
    counted = await engine.reserve(ANN, sales, 2)
    await engine.checkout(counted.id, ANN)
    uncounted = await engine.reserve(BOB, sales, 1)
    assert (await engine.store.claim(uncounted.id, clock.now, BOB, "lost")).kind == "OK"
    await engine.ledger.record_sale(uncounted)
    await redis.hincrby(sales_keys.stock, "sold", 2)
    # A hold MongoDB never heard of (its log entry lost), an ACTIVE record Redis lost, and
    # a checkout abandoned by a process that died before its transaction.
    unheard = await engine.reserve(ANN, holds, 1)
    await redis.delete(ProductKeys(holds).log)
    forgotten = Hold(
        id=ReservationId(holds, ObjectId()),
        customer_id=CAT,
        quantity=3,
        status=ReservationStatus.ACTIVE,
        created_at=to_datetime(clock.now),
        expires_at=to_datetime(clock.now) + timedelta(seconds=60),
    )
    await engine.ledger.record_holds(holds, [forgotten])  # as recorded before Redis lost it
    abandoned = await engine.reserve(BOB, holds, 2)
    assert (await engine.store.claim(abandoned.id, clock.now, BOB, "dead")).kind == "OK"
    await persister.run_once([sales, holds])
    clock.advance(ABANDONED_CLAIM_MS / 1000 + 1)
    reconciler = Reconciler(engine)
    before = ({p: await counters(engine, p) for p in (sales, holds)}, await statuses(engine))
    assert not (await audit(engine, [sales, holds])).ok

    dry = {
        repair.product_id: repair.findings()
        for repair in await reconciler.run([sales, holds], dry_run=True)
    }

    assert dry[sales] == [
        "Redis sold 4 recounted as 2",
        "1 sales in MongoDB counted in Redis",
        "1 abandoned checkouts settled",  # the uncounted sale's claim, left by its process
    ]
    assert dry[holds] == [
        "1 abandoned checkouts settled",
        "1 holds recorded in MongoDB",
        "1 ACTIVE records unknown to Redis recorded as EXPIRED",
    ]
    assert (
        {p: await counters(engine, p) for p in (sales, holds)},
        await statuses(engine),
    ) == before

    await reconciler.run([sales, holds])

    assert await counters(engine, sales) == StockCounters(10, 3, 0)
    assert await Order.count(engine.database) == 2
    assert await counters(engine, holds) == StockCounters(10, 0, 3)
    recorded = await statuses(engine)
    assert recorded[unheard.id.hold_id] is ReservationStatus.ACTIVE
    assert recorded[forgotten.id.hold_id] is ReservationStatus.EXPIRED
    assert (await engine.checkout(abandoned.id, BOB)).hold.id == abandoned.id  # back, buyable
    await persister.run_once([sales, holds])
    report = await audit(engine, [sales, holds])
    assert report.ok, report.problems
    again = await reconciler.run([sales, holds], dry_run=True)
    assert [repair.findings() for repair in again] == [[], []]
