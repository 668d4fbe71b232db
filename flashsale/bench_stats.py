"""`flashsale bench-stats`: how long `salesStats` takes over N seeded orders.

Seeds a fresh database straight with `insert_many` (orders and, as the seed command does,
7 holds for every 4 orders, spread over 30 days), then times the aggregation itself (no
HTTP) over three ranges, several times each: from the records alone, and with whole days
from the daily rollups (`analytics.rollups`, rebuilt after seeding). The two answers must
agree."""

import asyncio
import random
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from bson import ObjectId

from analytics import rollups
from analytics.sales import sales_stats
from core.settings import Settings
from flashsale.embedded import start_embedded
from models import Database, Order, Product, Reservation, ReservationStatus, ensure_indexes
from services import mongo_client

DAYS = 30
BATCH = 5_000
RUNS = 5


async def _seed(database: Database, orders: int, rng: random.Random, now: datetime) -> None:
    products = [ObjectId() for _ in range(20)]
    await Product.insert_many(
        database,
        [
            Product(id=p, name=f"Product {n}", price_cents=999, total_stock=0, max_per_customer=1)
            for n, p in enumerate(products)
        ],
    )
    holds = orders * 7 // 4
    statuses = [ReservationStatus.EXPIRED] * 2 + [ReservationStatus.CANCELLED]
    batch_orders: list[Order] = []
    batch_holds: list[Reservation] = []
    for n in range(holds):
        created = now - timedelta(seconds=rng.randrange(DAYS * 86_400))
        product = rng.choice(products)
        quantity = rng.choice([1, 1, 1, 2, 2, 3])
        hold_id = ObjectId()
        status = ReservationStatus.COMPLETED if n < orders else rng.choice(statuses)
        batch_holds.append(
            Reservation(
                id=hold_id,
                product_id=product,
                customer_id=ObjectId(),
                quantity=quantity,
                status=status,
                created_at=created,
                expires_at=created + timedelta(minutes=10),
            )
        )
        if n < orders:
            batch_orders.append(
                Order(
                    reservation_id=hold_id,
                    product_id=product,
                    customer_id=ObjectId(),
                    quantity=quantity,
                    unit_price_cents=999,
                    total_cents=999 * quantity,
                    created_at=created + timedelta(seconds=rng.randrange(30, 600)),
                )
            )
        if len(batch_holds) >= BATCH:
            await Reservation.insert_many(database, batch_holds)
            batch_holds = []
        if len(batch_orders) >= BATCH:
            await Order.insert_many(database, batch_orders)
            batch_orders = []
    if batch_holds:
        await Reservation.insert_many(database, batch_holds)
    if batch_orders:
        await Order.insert_many(database, batch_orders)


async def _run(uri: str, sizes: list[int]) -> list[str]:
    client = mongo_client(uri)  # configured as the application's
    lines = []
    try:
        for size in sizes:
            database = client[f"flashsale_bench_{uuid.uuid4().hex[:8]}"]
            await ensure_indexes(database)  # the application's, as models/ declares them
            now = datetime.now(UTC).replace(microsecond=0)
            started = time.perf_counter()
            await _seed(database, size, random.Random(size), now)
            seeded = time.perf_counter() - started
            started = time.perf_counter()
            await rollups.rebuild(database)
            rebuilt = time.perf_counter() - started
            midnight = rollups.day_of(now)
            for label, start, end in (
                ("last 30 days", now - timedelta(days=DAYS), now + timedelta(hours=1)),
                ("30 whole days", midnight - timedelta(days=DAYS), midnight),
                ("last 24 hours", now - timedelta(days=1), now + timedelta(hours=1)),
            ):
                answers = []
                for use_rollups in (False, True):
                    timings = []
                    for _ in range(RUNS):
                        started = time.perf_counter()
                        stats = await sales_stats(database, start, end, 5, rollups=use_rollups)
                        timings.append((time.perf_counter() - started) * 1000)
                    answers.append(stats)
                    source = "rollups" if use_rollups else "records"
                    lines.append(
                        f"{size:>7} orders, {label:>13}, {source:>7}: "
                        f"median {statistics.median(timings):8.1f} ms, "
                        f"min {min(timings):8.1f} ms over {RUNS} runs "
                        f"({stats.totals.orders} orders, {stats.funnel.created} holds in range)"
                    )
                if answers[0] != answers[1]:
                    raise SystemExit(f"{label}: the rollups and the records disagree")
            lines.append(
                f"{size:>7} orders: seeded in {seeded:.1f} s, rollups rebuilt in {rebuilt:.1f} s"
            )
            await client.drop_database(database.name)
    finally:
        await client.close()
    return lines


def run_bench_stats(settings: Settings, sizes: list[int]) -> int:
    embedded = None
    uri = settings.mongodb_uri
    if uri is None:
        embedded = start_embedded(
            Path(tempfile.mkdtemp(prefix="flashsale-stats-")), redis=False, mongo=True
        )
        uri = embedded.mongodb_uri
    try:
        for line in asyncio.run(_run(str(uri), sizes)):
            print(line, flush=True)  # noqa: T201
    finally:
        if embedded is not None:
            embedded.stop()
    return 0
