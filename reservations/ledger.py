"""The engine's record in MongoDB: every write of orders, reservations and rollups in one
place. A sale (the order, the product's sold count under its stock guard, the reservation
COMPLETED, the daily sales and funnel rollups) or a group of sales in one transaction;
the states of holds the persister and the reconciler record, a batch in one transaction;
and the reads that find what it recorded. Idempotent: an order is unique per reservation,
so a sale recorded twice is found, never made twice, and a hold's state is recorded only
over an ACTIVE record, so a replay changes nothing. The documents come from
reservations/records.py.
"""

from dataclasses import replace
from datetime import datetime
from typing import Any

import pymongo
from bson import ObjectId
from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError

from analytics.rollups import FunnelMoves, add_sale
from models import Order, Product, Reservation, ReservationStatus
from reservations.errors import OutOfStock
from reservations.records import (
    hold_from_document,
    inserted_fields,
    order_document,
    sale_from_documents,
)
from reservations.values import (
    Clock,
    Hold,
    RecordedOrder,
    ReservationId,
    Sale,
    system_clock,
    to_datetime,
    unguessable_id,
)

# How long one sale's transaction may take, its retries included (see checkout.py for the
# batching around it).
CHECKOUT_TIMEOUT_SECONDS = 5.0
# How long one batch of holds' states may take, its retries included.
RECORD_TIMEOUT_SECONDS = 10.0


class _Refused(Exception):
    """An order transaction for several holds refused as a whole (not all of them fit the
    stock guard, or one already has an order): each hold goes on its own instead."""


class Ledger:
    def __init__(
        self, database: AsyncDatabase[dict[str, Any]], clock: Clock = system_clock
    ) -> None:
        self.database = database
        self.clock = clock
        self._products = Product.collection(database)
        self._reservations = Reservation.collection(database)
        self._orders = Order.collection(database)

    async def record_sale(self, hold: Hold) -> Sale:
        """The durable step: one transaction, retried on transient errors within
        CHECKOUT_TIMEOUT_SECONDS, idempotent (the order is unique per reservation)."""
        now = to_datetime(self.clock())

        async def transaction(session: AsyncClientSession) -> Sale:
            existing = await self.recorded_sale(hold.id.hold_id, session)
            if existing is not None:
                return existing
            product = await self._products.find_one_and_update(
                {
                    "_id": hold.product_id,
                    "$expr": {"$lte": [{"$add": ["$sold", hold.quantity]}, "$total_stock"]},
                },
                {"$inc": {"sold": hold.quantity}},
                session=session,
                return_document=ReturnDocument.AFTER,
            )
            if product is None:  # MongoDB's own guard: never sell beyond total stock
                raise OutOfStock(0)
            price = int(product["price_cents"])
            recorded = await self._reservations.find_one(
                {"_id": hold.id.hold_id}, {"status": 1, "created_at": 1}, session=session
            )
            sale = Sale(
                unguessable_id(),
                replace(hold, status=ReservationStatus.COMPLETED, ended_at=now),
                price,
                price * hold.quantity,
                now,
            )
            await self._orders.insert_one(order_document(sale), session=session)
            await self._reservations.update_one(
                *_completion(hold, now), upsert=True, session=session
            )
            await add_sale(
                self.database,
                session,
                product_id=hold.product_id,
                at=now,
                quantity=hold.quantity,
                revenue_cents=sale.total_cents,
            )
            funnel = FunnelMoves()
            _count_completed(funnel, hold, recorded)
            await funnel.save(self.database, session)
            return sale

        with pymongo.timeout(CHECKOUT_TIMEOUT_SECONDS):
            async with self.database.client.start_session() as session:
                try:
                    return await session.with_transaction(transaction)
                except DuplicateKeyError:  # the order exists: another checkout recorded it
                    sale = await self.recorded_sale(hold.id.hold_id)
                    if sale is None:
                        raise
                    return sale

    async def record_sales(self, holds: list[Hold]) -> list[Sale | Exception]:
        """The durable step for several holds of one product: one transaction for all of
        them (retried on transient errors), all within CHECKOUT_TIMEOUT_SECONDS. If it is
        refused as a whole, each hold goes through `record_sale`, in order, within what
        is left of that time, so each gets its own answer."""
        with pymongo.timeout(CHECKOUT_TIMEOUT_SECONDS):
            now = to_datetime(self.clock())
            try:
                async with self.database.client.start_session() as session:
                    return list(
                        await session.with_transaction(
                            lambda session: self._sales_transaction(holds, now, session)
                        )
                    )
            except (_Refused, DuplicateKeyError, BulkWriteError):
                pass
            outcomes: list[Sale | Exception] = []
            for hold in holds:
                try:
                    outcomes.append(await self.record_sale(hold))
                except (OutOfStock, PyMongoError) as exc:
                    outcomes.append(exc)
            return outcomes

    async def _sales_transaction(
        self, holds: list[Hold], now: datetime, session: AsyncClientSession
    ) -> list[Sale]:
        """`record_sale`'s transaction for several holds of one product at once: the same
        writes, a statement each for all of them. Raises _Refused when they do not all fit
        the stock guard, or when one of them already has an order."""
        hold_ids = [hold.id.hold_id for hold in holds]
        if await self._orders.find_one({"reservation_id": {"$in": hold_ids}}, session=session):
            raise _Refused
        product_id, quantity = holds[0].product_id, sum(hold.quantity for hold in holds)
        product = await self._products.find_one_and_update(
            {
                "_id": product_id,
                "$expr": {"$lte": [{"$add": ["$sold", quantity]}, "$total_stock"]},
            },
            {"$inc": {"sold": quantity}},
            session=session,
            return_document=ReturnDocument.AFTER,
        )
        if product is None:
            raise _Refused
        price = int(product["price_cents"])
        recorded = {
            document["_id"]: document
            async for document in self._reservations.find(
                {"_id": {"$in": hold_ids}}, {"status": 1, "created_at": 1}, session=session
            )
        }
        sales = [
            Sale(
                unguessable_id(),
                replace(hold, status=ReservationStatus.COMPLETED, ended_at=now),
                price,
                price * hold.quantity,
                now,
            )
            for hold in holds
        ]
        await self._orders.insert_many(
            [order_document(sale) for sale in sales], ordered=True, session=session
        )
        await self._reservations.bulk_write(
            [UpdateOne(*_completion(hold, now), upsert=True) for hold in holds],
            ordered=True,
            session=session,
        )
        await add_sale(
            self.database,
            session,
            product_id=product_id,
            at=now,
            quantity=quantity,
            revenue_cents=sum(sale.total_cents for sale in sales),
            orders=len(sales),
        )
        funnel = FunnelMoves()
        for sale in sales:
            _count_completed(funnel, sale.hold, recorded.get(sale.hold.id.hold_id))
        await funnel.save(self.database, session)
        return sales

    async def record_holds(self, product_id: ObjectId, holds: list[Hold]) -> None:
        """Record these states of holds of one product, in one transaction (retried on
        transient errors, within RECORD_TIMEOUT_SECONDS). Idempotent: replaying them
        changes nothing."""
        if not holds:
            return
        with pymongo.timeout(RECORD_TIMEOUT_SECONDS):  # bounds the retries too
            async with self.database.client.start_session() as session:
                await session.with_transaction(
                    lambda session: self._holds_transaction(product_id, holds, session)
                )

    async def _holds_transaction(
        self, product_id: ObjectId, holds: list[Hold], session: AsyncClientSession
    ) -> None:
        """One transaction: each hold's state, and the funnel rollup moved to match. The
        writes only insert a missing hold or end an ACTIVE one, so a replayed entry changes
        nothing; the rollup follows what the writes will do, read in the same snapshot."""
        active = ReservationStatus.ACTIVE
        hold_ids = list({hold.id.hold_id for hold in holds})
        recorded: dict[ObjectId, tuple[str, datetime]] = {
            document["_id"]: (document["status"], document["created_at"])
            async for document in self._reservations.find(
                {"_id": {"$in": hold_ids}}, {"status": 1, "created_at": 1}, session=session
            )
        }
        funnel = FunnelMoves()
        operations: list[UpdateOne] = []
        for hold in holds:
            hold_id = hold.id.hold_id
            # Inserted ACTIVE, then ended below: one path for a new hold and a known one.
            begun = replace(hold, status=active, ended_at=None)
            operations.append(
                UpdateOne({"_id": hold_id}, {"$setOnInsert": inserted_fields(begun)}, upsert=True)
            )
            if hold_id not in recorded:
                recorded[hold_id] = (active.value, hold.created_at)
                funnel.created(product_id, hold.created_at, active.value)
            if hold.status is not active:
                # Only an ACTIVE record may end, so a terminal state never changes again.
                operations.append(
                    UpdateOne(
                        {"_id": hold_id, "status": active.value},
                        {"$set": {"status": hold.status.value, "ended_at": hold.ended_at}},
                    )
                )
                was, created = recorded[hold_id]
                if was == active.value:
                    recorded[hold_id] = (hold.status.value, created)
                    funnel.moved(product_id, created, was, hold.status.value)
        await self._reservations.bulk_write(operations, ordered=True, session=session)
        await funnel.save(self.database, session)

    async def recorded_sale(
        self, hold_id: ObjectId, session: AsyncClientSession | None = None
    ) -> Sale | None:
        """The hold's sale as MongoDB recorded it, if it was sold."""
        order = await self._orders.find_one({"reservation_id": hold_id}, session=session)
        if order is None:
            return None
        reservation = await self._reservations.find_one({"_id": hold_id}, session=session)
        return sale_from_documents(order, reservation)

    async def recorded_orders(self, product_id: ObjectId) -> list[RecordedOrder]:
        """MongoDB's orders of a product, as the counters need them."""
        return (await self.recorded_orders_of([product_id]))[product_id]

    async def recorded_orders_of(
        self, product_ids: list[ObjectId]
    ) -> dict[ObjectId, list[RecordedOrder]]:
        """MongoDB's orders of these products, each product's as the counters need them,
        in one read."""
        found: dict[ObjectId, list[RecordedOrder]] = {product_id: [] for product_id in product_ids}
        async for order in self._orders.find(
            {"product_id": {"$in": product_ids}},
            {"product_id": 1, "reservation_id": 1, "customer_id": 1, "quantity": 1},
        ):
            found[order["product_id"]].append(
                RecordedOrder(order["reservation_id"], order["customer_id"], order["quantity"])
            )
        return found

    async def active_holds(self, product_id: ObjectId) -> list[Hold]:
        """The product's holds MongoDB recorded as ACTIVE."""
        return (await self.active_holds_of([product_id]))[product_id]

    async def active_holds_of(self, product_ids: list[ObjectId]) -> dict[ObjectId, list[Hold]]:
        """The holds of these products MongoDB recorded as ACTIVE, by product, in one read."""
        found: dict[ObjectId, list[Hold]] = {product_id: [] for product_id in product_ids}
        async for document in self._reservations.find(
            {"product_id": {"$in": product_ids}, "status": ReservationStatus.ACTIVE.value}
        ):
            found[document["product_id"]].append(hold_from_document(document))
        return found

    async def recorded_hold(self, rid: ReservationId) -> Hold | None:
        """The hold as MongoDB recorded it."""
        # By _id alone (any server answers that from its index), then the product compared
        # here: a filter on both made SecantusDB scan the collection.
        document = await self._reservations.find_one({"_id": rid.hold_id})
        if document is None or document.get("product_id") != rid.product_id:
            return None
        return hold_from_document(document)


def _completion(hold: Hold, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The filter and update that record the hold COMPLETED (inserting it if the persister
    has not recorded it yet)."""
    return {"_id": hold.id.hold_id}, {
        "$set": {"status": ReservationStatus.COMPLETED.value, "ended_at": now},
        "$setOnInsert": inserted_fields(hold, without=("status", "ended_at")),
    }


def _count_completed(funnel: FunnelMoves, hold: Hold, recorded: dict[str, Any] | None) -> None:
    """Move the funnel rollup for a hold becoming COMPLETED, from its recorded state."""
    completed = ReservationStatus.COMPLETED.value
    if recorded is None:
        funnel.created(hold.product_id, hold.created_at, completed)
    elif recorded["status"] != completed:
        funnel.moved(hold.product_id, recorded["created_at"], recorded["status"], completed)
