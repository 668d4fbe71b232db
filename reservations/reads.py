"""The engine's reads: live counters, a hold as its caller may see it, a customer's holds
and orders. Live state comes from Redis (one round trip for a list), the rest from
MongoDB's record; while Redis is out of reach, the record answers where it can."""

from collections.abc import Iterable
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from models import Order, Reservation, ReservationStatus
from reservations.errors import ReservationNotFound, ServiceUnavailable
from reservations.ledger import Ledger
from reservations.loader import StockLoader
from reservations.records import hold_from_document, sale_from_documents
from reservations.store import StockStore
from reservations.values import Hold, ReservationId, Sale, StockCounters


class Reads:
    def __init__(
        self,
        store: StockStore,
        ledger: Ledger,
        loader: StockLoader,
        database: AsyncDatabase[dict[str, Any]],
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.loader = loader
        self._reservations = Reservation.collection(database)
        self._orders = Order.collection(database)

    async def counters(self, product_ids: Iterable[ObjectId]) -> dict[ObjectId, StockCounters]:
        """Live counters for these products, in one round trip (loading missing ones)."""
        ids = list(dict.fromkeys(product_ids))
        found = await self.store.counters(ids)
        missing = [product_id for product_id in ids if product_id not in found]
        if missing:
            await self.loader.ensure_loaded_many(missing)  # those that do not exist stay out
            found.update(await self.store.counters(missing))
        return found

    async def recorded_reserved(self, product_ids: Iterable[ObjectId]) -> dict[ObjectId, int]:
        """Units held by ACTIVE holds as MongoDB recorded them: the stock figure to show
        while Redis is out of reach (it trails the live one by the persister's delay)."""
        rows = await self._reservations.aggregate(
            [
                {"$match": {"product_id": {"$in": list(product_ids)}, "status": "ACTIVE"}},
                {"$group": {"_id": "$product_id", "units": {"$sum": "$quantity"}}},
            ]
        )
        return {row["_id"]: int(row["units"]) async for row in rows}

    async def find(self, rid: ReservationId, customer_id: ObjectId | None) -> Hold | None:
        """The hold if the caller may see it (`customer_id` None: anyone's), else None: as
        Redis has it (live), else as MongoDB recorded it. Another customer's hold and one
        that does not exist cost the same reads (both stores), so neither the answer nor
        its time tells that a hold exists. With Redis down, MongoDB's record answers (it
        trails the live state by the persister's delay); without one, ServiceUnavailable."""

        def visible(hold: Hold | None) -> bool:
            return hold is not None and customer_id in (None, hold.customer_id)

        try:
            live = await self.store.hold(rid)
        except ServiceUnavailable:
            recorded = await self.ledger.recorded_hold(rid)
            if not visible(recorded):
                raise
            return recorded
        if visible(live):
            return live
        # Redis has another's hold, or none: MongoDB is read either way.
        recorded = await self.ledger.recorded_hold(rid)
        return recorded if live is None and visible(recorded) else None

    async def owned(self, rid: ReservationId, customer_id: ObjectId | None) -> Hold:
        """The hold, if the caller may see it (see `find`); else ReservationNotFound."""
        hold = await self.find(rid, customer_id)
        if hold is None:
            raise ReservationNotFound(rid)
        return hold

    async def customer_holds(
        self, customer_id: ObjectId, status: ReservationStatus | None, limit: int
    ) -> list[Hold]:
        """The customer's holds, newest first, each as it is now: an ACTIVE record may
        already have ended in Redis (the persister is a moment behind); Redis is read once
        for all of them. While Redis is out of reach, as MongoDB recorded them."""
        query: dict[str, Any] = {"customer_id": customer_id}
        if status is not None:
            query["status"] = status.value
        cursor = self._reservations.find(query).sort("created_at", -1).limit(limit)
        holds = [hold_from_document(document) async for document in cursor]
        try:
            live = await self.store.holds(
                [hold.id for hold in holds if hold.status is ReservationStatus.ACTIVE]
            )
        except ServiceUnavailable:
            live = {}
        current = [live.get(hold.id, hold) for hold in holds]
        return [hold for hold in current if status is None or hold.status is status]

    async def customer_sales(self, customer_id: ObjectId, limit: int) -> list[Sale]:
        """The customer's orders, newest first, in two queries."""
        cursor = self._orders.find({"customer_id": customer_id}).sort("created_at", -1).limit(limit)
        orders = [order async for order in cursor]
        reservations = {
            document["_id"]: document
            async for document in self._reservations.find(
                {"_id": {"$in": [order["reservation_id"] for order in orders]}}
            )
        }
        return [
            sale_from_documents(order, reservations.get(order["reservation_id"]))
            for order in orders
        ]
