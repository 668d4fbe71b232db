"""`sales_stats`: one aggregation over a time range, `$facet` splitting it into totals, top
products, revenue by day and the reservation funnel.

The orders in the range feed the money figures; the reservations created in the range feed
the funnel. Whole UTC days are read from the daily rollups (`analytics.rollups`) rather than
from every order and hold; the partial days at either end of the range from the records,
through their `created_at` indexes. All of it is joined with `$unionWith`, so it stays one
aggregation and one round trip. Money stays in integer cents until the caller formats
it; days are UTC days, and days without sales are filled in with zeros here.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from analytics.rollups import FUNNEL, SALES, day_of, truncated_to_day
from flashsale.errors import InvalidInput
from models import ReservationStatus

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
    sources: list[tuple[str, list[dict[str, Any]]]] = []
    if days is None:
        edges = [(start, end)]
    else:
        first, last = days
        edges = [(a, b) for a, b in ((start, first), (last, end)) if a < b]
        in_days = {"$match": {"day": {"$gte": first, "$lt": last}}}
        sources += [
            (SALES, [in_days, {"$project": _SALE_ROW}]),
            (FUNNEL, [in_days, {"$project": _HOLD_ROW}]),
        ]
    if edges:
        created = {"$or": [{"created_at": {"$gte": a, "$lt": b}} for a, b in edges]}
        sources += [
            ("orders", [{"$match": created}, {"$project": _ORDER_AS_SALE_ROW}]),
            ("reservations", [{"$match": created}, {"$project": _RESERVATION_AS_HOLD_ROW}]),
        ]
    (collection, pipeline), *others = sources
    pipeline = [
        *pipeline,
        *({"$unionWith": {"coll": name, "pipeline": stages}} for name, stages in others),
        {"$facet": _facets(top)},
    ]
    cursor = await database[collection].aggregate(pipeline)
    (facets,) = await cursor.to_list()
    return SalesStats(
        start=start,
        end=end,
        totals=_totals(facets["totals"]),
        top_products=[
            ProductSales(row["_id"], row.get("name"), int(row["revenue"]), int(row["units"]))
            for row in facets["top"]
        ],
        by_day=_days(start, end, facets["days"]),
        funnel=_funnel(facets["funnel"]),
    )


# Every source becomes rows of two kinds, so one $facet sums them all: a sale row (an order,
# or a product's day in the rollup) and a hold row (a reservation, or a (day, status) count).
_SALE_ROW = {
    "_id": 0,
    "kind": "sale",
    "product_id": 1,
    "day": 1,
    "revenue_cents": 1,
    "units": 1,
    "orders": 1,
}
_ORDER_AS_SALE_ROW = {
    "_id": 0,
    "kind": "sale",
    "product_id": 1,
    "day": truncated_to_day("$created_at"),
    "revenue_cents": "$total_cents",
    "units": "$quantity",
    "orders": {"$literal": 1},
}
_HOLD_ROW = {"_id": 0, "kind": "hold", "status": 1, "count": "$holds"}
_RESERVATION_AS_HOLD_ROW = {"_id": 0, "kind": "hold", "status": 1, "count": {"$literal": 1}}


def _facets(top: int) -> dict[str, list[dict[str, Any]]]:
    sales = {"$match": {"kind": "sale"}}
    sums = {
        "revenue": {"$sum": "$revenue_cents"},
        "units": {"$sum": "$units"},
        "orders": {"$sum": "$orders"},
    }
    return {
        "totals": [sales, {"$group": {"_id": None, **sums}}],
        "top": [
            sales,
            {"$group": {"_id": "$product_id", **sums}},
            {"$sort": {"revenue": -1, "_id": 1}},
            {"$limit": top},
            {
                "$lookup": {
                    "from": "products",
                    "localField": "_id",
                    "foreignField": "_id",
                    "as": "product",
                }
            },
            {"$unwind": {"path": "$product", "preserveNullAndEmptyArrays": True}},
            {"$project": {"revenue": 1, "units": 1, "name": "$product.name"}},
        ],
        "days": [sales, {"$group": {"_id": "$day", **sums}}],
        "funnel": [
            {"$match": {"kind": "hold"}},
            {"$group": {"_id": "$status", "count": {"$sum": "$count"}}},
        ],
    }


def _whole_days(start: datetime, end: datetime) -> tuple[datetime, datetime] | None:
    """The whole UTC days inside [start, end), as [first midnight, last midnight)."""
    first = day_of(start)
    if first < start:
        first += timedelta(days=1)
    last = day_of(end)
    return (first, last) if first < last else None


def _totals(rows: list[dict[str, Any]]) -> Totals:
    if not rows:
        return Totals(0, 0, 0)
    return Totals(int(rows[0]["revenue"]), int(rows[0]["units"]), int(rows[0]["orders"]))


def _days(start: datetime, end: datetime, rows: list[dict[str, Any]]) -> list[DaySales]:
    """Every UTC day the range touches, in order, zero where nothing was sold."""
    found = {day_of(row["_id"]).date(): row for row in rows}
    first = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    days = []
    day = first
    while day <= last:
        row = found.get(day, {})
        days.append(
            DaySales(
                day,
                int(row.get("revenue", 0)),
                int(row.get("units", 0)),
                int(row.get("orders", 0)),
            )
        )
        day += timedelta(days=1)
    return days


def _funnel(rows: list[dict[str, Any]]) -> Funnel:
    counts = {row["_id"]: int(row["count"]) for row in rows}
    return Funnel(
        created=sum(counts.values()),
        active=counts.get(ReservationStatus.ACTIVE.value, 0),
        completed=counts.get(ReservationStatus.COMPLETED.value, 0),
        expired=counts.get(ReservationStatus.EXPIRED.value, 0),
        cancelled=counts.get(ReservationStatus.CANCELLED.value, 0),
    )
