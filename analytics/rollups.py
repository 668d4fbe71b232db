"""Daily rollups: what `salesStats` reads for whole UTC days instead of every order and hold.

- `daily_sales` (day, product): revenue, units and orders, `$inc`ed by checkout inside the
  transaction that writes the order.
- `daily_funnel` (day, product, status): how many holds of that product created that day
  are now in that status, moved inside the transaction that records the hold's state (a
  persister batch, checkout). Per product, like `daily_sales`, so that checkouts of
  different products never write the same rollup document (no shared hot spot).

Each count changes in the same transaction as the record it counts, so the rollups are
exact, not eventually right. `rebuild` recomputes them from orders and reservations (after
seeding or an upgrade, with the sale stopped); `check` compares them with a recount.
"""

from collections import Counter
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase

from models import DailyFunnel, DailySales, Order, Reservation


def day_of(moment: datetime) -> datetime:
    """Midnight UTC of the day `moment` falls on (naive datetimes are UTC, as PyMongo's)."""
    utc = moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)
    return datetime(utc.year, utc.month, utc.day, tzinfo=UTC)


def truncated_to_day(field: str) -> dict[str, Any]:
    """The aggregation expression for `day_of` a date field."""
    return {"$dateTrunc": {"date": field, "unit": "day", "timezone": "UTC"}}


async def add_sale(
    database: AsyncDatabase[dict[str, Any]],
    session: AsyncClientSession,
    *,
    product_id: ObjectId,
    at: datetime,
    quantity: int,
    revenue_cents: int,
    orders: int = 1,
) -> None:
    """Count `orders` orders of `quantity` units in all, for `revenue_cents`, on the day of
    `at`."""
    await DailySales.collection(database).update_one(
        {"day": day_of(at), "product_id": product_id},
        {"$inc": {"revenue_cents": revenue_cents, "units": quantity, "orders": orders}},
        upsert=True,
        session=session,
    )


class FunnelMoves:
    """Changes to `daily_funnel`, gathered while a transaction decides its writes."""

    def __init__(self) -> None:
        self._counts: Counter[tuple[datetime, ObjectId, str]] = Counter()

    def created(self, product_id: ObjectId, created_at: datetime, status: str) -> None:
        self._counts[(day_of(created_at), product_id, status)] += 1

    def moved(self, product_id: ObjectId, created_at: datetime, old: str, new: str) -> None:
        day = day_of(created_at)
        self._counts[(day, product_id, old)] -= 1
        self._counts[(day, product_id, new)] += 1

    async def save(
        self, database: AsyncDatabase[dict[str, Any]], session: AsyncClientSession
    ) -> None:
        for (day, product_id, status), change in sorted(self._counts.items()):
            if change:
                await DailyFunnel.collection(database).update_one(
                    {"day": day, "product_id": product_id, "status": status},
                    {"$inc": {"holds": change}},
                    upsert=True,
                    session=session,
                )


async def _recount(
    database: AsyncDatabase[dict[str, Any]],
) -> tuple[dict[tuple[datetime, Any], tuple[int, int, int]], dict[tuple[datetime, Any, str], int]]:
    sales = {}
    async for row in await Order.collection(database).aggregate(
        [
            {
                "$group": {
                    "_id": {"day": truncated_to_day("$created_at"), "product_id": "$product_id"},
                    "revenue": {"$sum": "$total_cents"},
                    "units": {"$sum": "$quantity"},
                    "orders": {"$sum": 1},
                }
            }
        ]
    ):
        key = (day_of(row["_id"]["day"]), row["_id"]["product_id"])
        sales[key] = (int(row["revenue"]), int(row["units"]), int(row["orders"]))
    funnel = {}
    async for row in await Reservation.collection(database).aggregate(
        [
            {
                "$group": {
                    "_id": {
                        "day": truncated_to_day("$created_at"),
                        "product_id": "$product_id",
                        "status": "$status",
                    },
                    "count": {"$sum": 1},
                }
            }
        ]
    ):
        slot = (day_of(row["_id"]["day"]), row["_id"]["product_id"], row["_id"]["status"])
        funnel[slot] = int(row["count"])
    return sales, funnel


async def rebuild(database: AsyncDatabase[dict[str, Any]]) -> None:
    """Recompute both rollups from the records. Not safe while checkouts run."""
    sales, funnel = await _recount(database)
    await DailySales.collection(database).delete_many({})
    await DailyFunnel.collection(database).delete_many({})
    if sales:
        await DailySales.collection(database).insert_many(
            [
                {"day": day, "product_id": pid, "revenue_cents": r, "units": u, "orders": o}
                for (day, pid), (r, u, o) in sales.items()
            ]
        )
    if funnel:
        await DailyFunnel.collection(database).insert_many(
            [
                {"day": day, "product_id": pid, "status": status, "holds": n}
                for (day, pid, status), n in funnel.items()
            ]
        )


async def check(database: AsyncDatabase[dict[str, Any]]) -> list[str]:
    """Where the rollups differ from a recount of orders and reservations (run at rest)."""
    sales, funnel = await _recount(database)
    problems = []
    kept_sales = {}
    async for row in DailySales.collection(database).find({}):
        key = (day_of(row["day"]), row["product_id"])
        kept_sales[key] = (row["revenue_cents"], row["units"], row["orders"])
    for key in sorted(set(sales) | set(kept_sales), key=str):
        recount, kept = sales.get(key, (0, 0, 0)), kept_sales.get(key, (0, 0, 0))
        if recount != kept:
            problems.append(f"daily_sales {key}: kept {kept}, recount {recount}")
    kept_funnel = {}
    async for row in DailyFunnel.collection(database).find({}):
        kept_funnel[(day_of(row["day"]), row["product_id"], row["status"])] = row["holds"]
    for slot in sorted(set(funnel) | set(kept_funnel), key=str):
        if funnel.get(slot, 0) != kept_funnel.get(slot, 0):
            problems.append(
                f"daily_funnel {slot}: kept {kept_funnel.get(slot, 0)}, "
                f"recount {funnel.get(slot, 0)}"
            )
    return problems
