"""salesStats against an independent computation in plain Python over the same seeded
orders and reservations, on real SecantusDB: random data, empty ranges, UTC day edges."""

import random
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import pytest
from bson import ObjectId

from analytics import rollups
from analytics.sales import sales_stats
from core.errors import InvalidInput
from models import Order, Product, Reservation, ReservationStatus
from models.stored import Database
from services import Services
from tests.conftest import GraphQL, error_codes

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)


async def _seed(
    database: Database, rng: random.Random, orders: int, holds: int
) -> tuple[list[Order], list[Reservation], dict[ObjectId, str]]:
    products = []
    for n in range(6):
        product = Product(
            name=f"P{n}", price_cents=100 * (n + 1), total_stock=10**6, max_per_customer=5
        )
        await product.insert(database)
        products.append(product)
    await products[-1].delete(database)  # deleted after selling: its name is gone
    made_orders = []
    for _ in range(orders):
        product = rng.choice(products)
        quantity = rng.randint(1, 5)
        unit = rng.choice([1, 99, 1999, 123457])
        made_orders.append(
            Order(
                reservation_id=ObjectId(),
                product_id=product.id,
                customer_id=ObjectId(),
                quantity=quantity,
                unit_price_cents=unit,
                total_cents=unit * quantity,
                created_at=DAY0 + timedelta(milliseconds=rng.randint(0, 10 * 86_400_000)),
            )
        )
    made_holds = [
        Reservation(
            product_id=rng.choice(products).id,
            customer_id=ObjectId(),
            quantity=1,
            status=rng.choice(list(ReservationStatus)),
            created_at=(moment := DAY0 + timedelta(milliseconds=rng.randint(0, 10 * 86_400_000))),
            expires_at=moment + timedelta(minutes=10),
        )
        for _ in range(holds)
    ]
    if made_orders:
        await Order.insert_many(database, made_orders)
    if made_holds:
        await Reservation.insert_many(database, made_holds)
    await rollups.rebuild(database)
    names: dict[ObjectId, str] = {p.id: p.name for p in products[:-1]}
    return made_orders, made_holds, names


def _expected(
    orders: list[Order],
    holds: list[Reservation],
    names: dict[ObjectId, str],
    start: datetime,
    end: datetime,
    top: int,
) -> dict[str, Any]:
    inside = [o for o in orders if start <= o.created_at < end]
    revenue = sum(o.total_cents for o in inside)
    per_product: dict[ObjectId, list[int]] = defaultdict(lambda: [0, 0])
    per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    for order in inside:
        per_product[order.product_id][0] += order.total_cents
        per_product[order.product_id][1] += order.quantity
        day = per_day[order.created_at.astimezone(UTC).date()]
        day[0] += order.total_cents
        day[1] += order.quantity
        day[2] += 1
    ranked = sorted(per_product.items(), key=lambda kv: (-kv[1][0], str(kv[0])))[:top]
    days = []
    today = start.astimezone(UTC).date()
    while datetime(today.year, today.month, today.day, tzinfo=UTC) < end:
        days.append((today, *per_day.get(today, [0, 0, 0])))
        today += timedelta(days=1)
    held = [h for h in holds if start <= h.created_at < end]
    by_status = {s: sum(h.status == s for h in held) for s in ReservationStatus}
    average = (
        (Decimal(revenue) / len(inside)).quantize(Decimal(1), rounding=ROUND_HALF_UP)
        if inside
        else Decimal(0)
    )
    return {
        "totals": (revenue, sum(o.quantity for o in inside), len(inside), average),
        "top": [(pid, names.get(pid), r, u) for pid, (r, u) in ranked],
        "days": days,
        "funnel": (len(held), *(by_status[s] for s in ReservationStatus)),
    }


def _actual(stats: Any) -> dict[str, Any]:
    return {
        "totals": (
            stats.totals.revenue_cents,
            stats.totals.units,
            stats.totals.orders,
            stats.totals.average_order_cents,
        ),
        "top": [(p.product_id, p.name, p.revenue_cents, p.units) for p in stats.top_products],
        "days": [(d.day, d.revenue_cents, d.units, d.orders) for d in stats.by_day],
        "funnel": (
            stats.funnel.created,
            *(getattr(stats.funnel, s.value.lower()) for s in ReservationStatus),
        ),
    }


async def test_figures_match_an_independent_computation(services: Services) -> None:
    rng = random.Random(7)
    database = services.database
    orders, holds, names = await _seed(database, rng, orders=400, holds=700)
    ranges = [
        (DAY0, DAY0 + timedelta(days=11), 5),
        (DAY0 + timedelta(days=2, hours=5), DAY0 + timedelta(days=6, minutes=7), 3),
        # Inside one UTC day: no whole day, all of it from the records.
        (DAY0 + timedelta(days=4, hours=3), DAY0 + timedelta(days=4, hours=20), 5),
        # A non-UTC offset: the same instants, and UTC days all the same.
        (
            (DAY0 + timedelta(days=1)).astimezone(timezone(timedelta(hours=-7))),
            (DAY0 + timedelta(days=3, hours=12)).astimezone(timezone(timedelta(hours=5))),
            50,
        ),
    ]
    for start, end, top in ranges:
        expected = _expected(orders, holds, names, start, end, top)
        for use_rollups in (True, False):
            stats = await sales_stats(database, start, end, top, rollups=use_rollups)
            assert _actual(stats) == expected, (start, end, use_rollups)
    assert any(p.name is None for p in (await sales_stats(database, *ranges[0])).top_products)


async def test_day_edges_are_utc_and_the_end_is_excluded(services: Services) -> None:
    product = Product(name="Edge", price_cents=100, total_stock=10, max_per_customer=5)
    await product.insert(services.database)
    moments = [
        DAY0 - timedelta(milliseconds=1),  # before the range
        DAY0,  # first instant of day 1
        DAY0 + timedelta(days=1) - timedelta(milliseconds=1),  # last instant of day 1
        DAY0 + timedelta(days=1),  # day 2
        DAY0 + timedelta(days=3),  # the end: excluded
    ]
    await Order.insert_many(
        services.database,
        [
            Order(
                reservation_id=ObjectId(),
                product_id=product.id,
                customer_id=ObjectId(),
                quantity=1,
                unit_price_cents=100,
                total_cents=100,
                created_at=moment,
            )
            for moment in moments
        ],
    )
    database = services.mongo[services.settings.mongodb_db]
    await rollups.rebuild(database)
    for start, end, use_rollups in (
        (DAY0, DAY0 + timedelta(days=3), True),  # whole days: the rollups
        (DAY0, DAY0 + timedelta(days=3), False),
        (DAY0, DAY0 + timedelta(days=2, hours=23), True),  # day 3 in part: its orders
    ):
        stats = await sales_stats(database, start, end, rollups=use_rollups)
        assert [(d.day.isoformat(), d.orders) for d in stats.by_day] == [
            ("2026-03-01", 2),
            ("2026-03-02", 1),
            ("2026-03-03", 0),
        ]
        assert stats.totals.orders == 3


async def test_an_empty_range_is_all_zeros(services: Services) -> None:
    database = services.mongo[services.settings.mongodb_db]
    stats = await sales_stats(database, DAY0, DAY0 + timedelta(days=2))
    totals = stats.totals
    assert (totals.revenue_cents, totals.orders, totals.average_order_cents) == (0, 0, Decimal(0))
    assert stats.top_products == []
    assert [(d.revenue_cents, d.orders) for d in stats.by_day] == [(0, 0), (0, 0)]
    assert (stats.funnel.created, stats.funnel.conversion_rate) == (0, 0.0)


@pytest.mark.parametrize(
    ("start", "end", "top", "field"),
    [
        (DAY0, DAY0, 5, "to"),
        (DAY0, DAY0 - timedelta(days=1), 5, "to"),
        (DAY0, DAY0 + timedelta(days=400), 5, "to"),
        (DAY0, DAY0 + timedelta(days=1), 0, "top"),
        (DAY0.replace(tzinfo=None), DAY0 + timedelta(days=1), 5, "from"),
    ],
)
async def test_bad_ranges_are_refused(
    services: Services, start: datetime, end: datetime, top: int, field: str
) -> None:
    database = services.mongo[services.settings.mongodb_db]
    with pytest.raises(InvalidInput) as refused:
        await sales_stats(database, start, end, top)
    assert refused.value.field == field


SALES = """query S($from: DateTime!, $to: DateTime!) { salesStats(from: $from, to: $to, top: 2) {
  from to totals { revenue units orders averageOrderValue }
  topProducts { productId name revenue units } byDay { day revenue units orders }
  funnel { created active completed expired cancelled conversionRate } } }"""


async def test_sales_stats_over_graphql_is_for_admins_with_exact_money(
    gql: GraphQL, services: Services, admin_token: str, customer_token: str
) -> None:
    product = Product(name="Phone", price_cents=79_999, total_stock=10, max_per_customer=5)
    await product.insert(services.database)
    for quantity, at in ((1, DAY0 + timedelta(hours=1)), (2, DAY0 + timedelta(hours=2))):
        await Order(
            reservation_id=ObjectId(),
            product_id=product.id,
            customer_id=ObjectId(),
            quantity=quantity,
            unit_price_cents=79_999,
            total_cents=79_999 * quantity,
            created_at=at,
        ).insert(services.database)
    await rollups.rebuild(services.mongo[services.settings.mongodb_db])
    variables = {"from": "2026-03-01T00:00:00Z", "to": "2026-03-03T00:00:00Z"}
    refused = await gql(SALES, variables, token=customer_token)
    assert error_codes(refused) == ["FORBIDDEN"]

    stats = (await gql(SALES, variables, token=admin_token))["data"]["salesStats"]
    assert stats["totals"] == {
        "revenue": "2399.97",
        "units": 3,
        "orders": 2,
        "averageOrderValue": "1199.99",  # 1199.985 rounded half up
    }
    assert stats["topProducts"] == [
        {"productId": str(product.id), "name": "Phone", "revenue": "2399.97", "units": 3}
    ]
    assert stats["byDay"] == [
        {"day": "2026-03-01", "revenue": "2399.97", "units": 3, "orders": 2},
        {"day": "2026-03-02", "revenue": "0.00", "units": 0, "orders": 0},
    ]
    assert stats["funnel"]["created"] == 0

    bad = await gql(SALES, {"from": variables["to"], "to": variables["from"]}, token=admin_token)
    assert error_codes(bad) == ["BAD_USER_INPUT"]
