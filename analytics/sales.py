"""`sales_stats`: one aggregation over a time range, `$facet` splitting it into totals, top
products, revenue by day and the reservation funnel.

The orders in the range feed the money figures; the reservations created in the range
(joined in with `$unionWith`, so it stays one round trip) feed the funnel. Both `$match`
stages use the `created_at` indexes. Money stays in integer cents until the caller formats
it; days are UTC days, and days without sales are filled in with zeros here.
"""

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

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
    database: AsyncDatabase[dict[str, Any]], start: datetime, end: datetime, top: int = 5
) -> SalesStats:
    """Sales in [start, end)."""
    check_range(start, end, top)
    created = {"created_at": {"$gte": start, "$lt": end}}
    orders_only = {"$match": {"kind": "order"}}
    pipeline: list[dict[str, Any]] = [
        {"$match": created},
        {
            "$project": {
                "kind": "order",
                "product_id": 1,
                "quantity": 1,
                "total_cents": 1,
                "created_at": 1,
            }
        },
        {
            "$unionWith": {
                "coll": "reservations",
                "pipeline": [{"$match": created}, {"$project": {"kind": "hold", "status": 1}}],
            }
        },
        {
            "$facet": {
                "totals": [
                    orders_only,
                    {
                        "$group": {
                            "_id": None,
                            "revenue": {"$sum": "$total_cents"},
                            "units": {"$sum": "$quantity"},
                            "orders": {"$sum": 1},
                        }
                    },
                ],
                "top": [
                    orders_only,
                    {
                        "$group": {
                            "_id": "$product_id",
                            "revenue": {"$sum": "$total_cents"},
                            "units": {"$sum": "$quantity"},
                        }
                    },
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
                "days": [
                    orders_only,
                    {
                        "$group": {
                            "_id": {
                                "$dateToString": {
                                    "format": "%Y-%m-%d",
                                    "date": "$created_at",
                                    "timezone": "UTC",
                                }
                            },
                            "revenue": {"$sum": "$total_cents"},
                            "units": {"$sum": "$quantity"},
                            "orders": {"$sum": 1},
                        }
                    },
                ],
                "funnel": [
                    {"$match": {"kind": "hold"}},
                    {"$group": {"_id": "$status", "count": {"$sum": 1}}},
                ],
            }
        },
    ]
    cursor = await database["orders"].aggregate(pipeline)
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


def _totals(rows: list[dict[str, Any]]) -> Totals:
    if not rows:
        return Totals(0, 0, 0)
    return Totals(int(rows[0]["revenue"]), int(rows[0]["units"]), int(rows[0]["orders"]))


def _days(start: datetime, end: datetime, rows: list[dict[str, Any]]) -> list[DaySales]:
    """Every UTC day the range touches, in order, zero where nothing was sold."""
    found = {row["_id"]: row for row in rows}
    first = start.astimezone(UTC).date()
    last = (end.astimezone(UTC) - timedelta(microseconds=1)).date()
    days = []
    day = first
    while day <= last:
        row = found.get(day.isoformat(), {})
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
