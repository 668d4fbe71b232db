"""`sales_stats`: totals, top products, revenue by UTC day and the reservation funnel over a
time range.

The orders in the range feed the money figures; the reservations created in the range feed
the funnel. Whole UTC days are read from the daily rollups (`analytics.rollups`), so their
cost depends on days and products, not on orders; only the partial days at either end of the
range are read from the records, through their `created_at` indexes. Each source is one
`$match` + `$group` aggregation on its own collection, all of them at once, and the few
grouped rows are added up here. (One aggregation joining the sources with `$unionWith` and
splitting them with `$facet` was measured first: SecantusDB reads a `$unionWith` collection
whole, without its index, which made it 10 to 100 times slower; see BENCHMARKS.md.)
Money stays in integer cents until the caller formats it; days without sales are zeros.
"""

import asyncio
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from analytics.rollups import day_of, truncated_to_day
from core.errors import InvalidInput
from models import (
    DailyFunnel,
    DailySales,
    Order,
    Product,
    Reservation,
    ReservationStatus,
    Stored,
)

MAX_DAYS = 366
MAX_TOP = 50


@dataclass(frozen=True)
class Totals:
    revenue_cents: int
    units: int
    orders: int

    @property
    def average_order_cents(self) -> Decimal:
        """Exact to the cent, halves rounded up; 0 without orders."""
        if not self.orders:
            return Decimal(0)
        return (Decimal(self.revenue_cents) / self.orders).quantize(
            Decimal(1), rounding=ROUND_HALF_UP
        )


@dataclass(frozen=True)
class ProductSales:
    product_id: ObjectId
    name: str | None  # None if the product has since been deleted
    revenue_cents: int
    units: int


@dataclass(frozen=True)
class DaySales:
    day: date
    revenue_cents: int
    units: int
    orders: int


@dataclass(frozen=True)
class Funnel:
    created: int
    active: int
    completed: int
    expired: int
    cancelled: int

    @property
    def conversion_rate(self) -> float:
        """Completed holds per hold created, 0 when none were."""
        return self.completed / self.created if self.created else 0.0


@dataclass(frozen=True)
class SalesStats:
    start: datetime
    end: datetime
    totals: Totals
    top_products: list[ProductSales]
    by_day: list[DaySales]
    funnel: Funnel


def check_range(start: datetime, end: datetime, top: int) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise InvalidInput("from", "give a time zone (UTC: a trailing Z)")
    if start >= end:
        raise InvalidInput("to", "must be after from")
    if (end - start) > timedelta(days=MAX_DAYS):
        raise InvalidInput("to", f"the range may span at most {MAX_DAYS} days")
    if not 1 <= top <= MAX_TOP:
        raise InvalidInput("top", f"must be between 1 and {MAX_TOP}")


async def sales_stats(
    database: AsyncDatabase[dict[str, Any]],
    start: datetime,
    end: datetime,
    top: int = 5,
    *,
    rollups: bool = True,
) -> SalesStats:
    """Sales in [start, end). With `rollups`, whole UTC days come from the daily rollups and
    only the partial days at either end from the orders and reservations themselves;
    without, everything comes from the records (the benchmark compares the two)."""
    check_range(start, end, top)
    days = _whole_days(start, end) if rollups else None
    # The sources: (collection, match, its day, what to sum) and (collection, match, count).
    sales: list[tuple[type[Stored], dict[str, Any], Any, dict[str, Any]]] = []
    funnel: list[tuple[type[Stored], dict[str, Any], Any]] = []
    edges = [(start, end)]
    if days is not None:
        first, last = days
        edges = [(a, b) for a, b in ((start, first), (last, end)) if a < b]
        in_days = {"day": {"$gte": first, "$lt": last}}
        sales.append((DailySales, in_days, "$day", _ROLLED_UP_SALES))
        funnel.append((DailyFunnel, in_days, "$holds"))
    for a, b in edges:
        created = {"created_at": {"$gte": a, "$lt": b}}
        sales.append((Order, created, truncated_to_day("$created_at"), _ORDER_SALES))
        funnel.append((Reservation, created, 1))
    sale_rows, funnel_rows = await asyncio.gather(
        _gathered(
            [
                _rows(
                    model.collection(database),
                    match,
                    {"product_id": "$product_id", "day": day},
                    sums,
                )
                for model, match, day, sums in sales
            ]
        ),
        _gathered(
            [
                _rows(model.collection(database), match, "$status", {"count": {"$sum": count}})
                for model, match, count in funnel
            ]
        ),
    )
    per_product: dict[ObjectId, list[int]] = defaultdict(lambda: [0, 0, 0])
    per_day: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    for row in sale_rows:
        figures = (int(row["revenue"]), int(row["units"]), int(row["orders"]))
        day = day_of(row["_id"]["day"]).date()
        for totals in (per_product[row["_id"]["product_id"]], per_day[day]):
            for index, value in enumerate(figures):
                totals[index] += value
    statuses: Counter[str] = Counter()
    for row in funnel_rows:
        statuses[row["_id"]] += int(row["count"])
    return SalesStats(
        start=start,
        end=end,
        totals=Totals(*(sum(figures[i] for figures in per_product.values()) for i in range(3))),
        top_products=await _top(database, per_product, top),
        by_day=_days(start, end, per_day),
        funnel=_funnel(statuses),
    )


# What one sale row sums, from an order and from a product's day in the rollup.
_ORDER_SALES = {
    "revenue": {"$sum": "$total_cents"},
    "units": {"$sum": "$quantity"},
    "orders": {"$sum": 1},
}
_ROLLED_UP_SALES = {
    "revenue": {"$sum": "$revenue_cents"},
    "units": {"$sum": "$units"},
    "orders": {"$sum": "$orders"},
}


async def _rows(
    collection: AsyncCollection[dict[str, Any]],
    match: dict[str, Any],
    key: Any,
    sums: dict[str, Any],
) -> list[dict[str, Any]]:
    cursor = await collection.aggregate([{"$match": match}, {"$group": {"_id": key, **sums}}])
    return await cursor.to_list()


async def _gathered(queries: list[Any]) -> list[dict[str, Any]]:
    return [row for rows in await asyncio.gather(*queries) for row in rows]


async def _top(
    database: AsyncDatabase[dict[str, Any]], per_product: dict[ObjectId, list[int]], top: int
) -> list[ProductSales]:
    """The best sellers by revenue (ties: the older product id first), with their names."""
    ranked = sorted(per_product.items(), key=lambda item: (-item[1][0], item[0]))[:top]
    names = {
        product["_id"]: product["name"]
        async for product in Product.collection(database).find(
            {"_id": {"$in": [product_id for product_id, _ in ranked]}}, {"name": 1}
        )
    }
    return [
        ProductSales(product_id, names.get(product_id), revenue, units)
        for product_id, (revenue, units, _) in ranked
    ]


def _whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    """The whole UTC days inside [start, end), as [first midnight, last midnight)."""
    first = day_of(start)
    if first < start:
        first += timedelta(days=1)
    last = day_of(end)
    return (first, last) if first < last else None


def _days(start: datetime, end: datetime, per_day: dict[date, list[int]]) -> list[DaySales]:
    """Every UTC day the range touches, in order, zero where nothing was sold."""
    first = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    days = []
    day = first
    while day <= last:
        revenue, units, orders = per_day.get(day, (0, 0, 0))
        days.append(DaySales(day, revenue, units, orders))
        day += timedelta(days=1)
    return days


def _funnel(statuses: Counter[str]) -> Funnel:
    return Funnel(
        created=sum(statuses.values()),
        active=statuses[ReservationStatus.ACTIVE.value],
        completed=statuses[ReservationStatus.COMPLETED.value],
        expired=statuses[ReservationStatus.EXPIRED.value],
        cancelled=statuses[ReservationStatus.CANCELLED.value],
    )
