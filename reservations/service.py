"""The reservation engine's operations. Each state change is one Lua script in Redis;
checkout is made durable in MongoDB (a transaction) before it answers.

Invariants it keeps (see docs/invariants.md): sold + reserved <= total stock for every product, at
every instant, across any number of processes; every hold ends exactly once; a retry with
the same idempotency key returns the first result and changes nothing.
"""

import asyncio
import contextlib
import logging
import os
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import pymongo
from bson import ObjectId
from prometheus_client import Counter
from pymongo import ReturnDocument, UpdateOne
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError, DuplicateKeyError, PyMongoError
from redis.asyncio import Redis

from analytics.rollups import FunnelMoves, add_sale
from core.errors import InvalidInput
from core.outages import MONGODB
from models import ReservationStatus
from reservations.errors import (
    CheckoutInProgress,
    IdempotencyKeyReused,
    LimitPerCustomer,
    OutOfStock,
    ProductMissing,
    ReservationError,
    ReservationExpired,
    ReservationNotActive,
    ReservationNotFound,
    SaleNotActive,
    ServiceUnavailable,
)
from reservations.store import StockStore
from reservations.values import (
    Hold,
    RecordedOrder,
    ReservationId,
    Sale,
    StockCounters,
    hold_from_document,
    text,
    to_datetime,
    to_ms,
)
from telemetry import CHECKOUTS, HOLDS_EXPIRED, RESERVATIONS

logger = logging.getLogger("flashsale.reservations")

Clock = Callable[[], int]  # milliseconds since the epoch
QUANTITY_MAX = 1_000
IDEMPOTENCY_KEY_MAX = 128
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
EXPIRE_BATCH = 500
# Group commit. Checkouts of one product all write its document, so two of its order
# transactions at once only conflict and retry inside the database. With one transaction
# per checkout, one at a time, a burst queued for its length times one transaction (8 round
# trips and an fsync: ~40 ms on a busy 2-core machine, so the 200th of 200 at once waited
# 8 s, and past 15 s answered SERVICE_UNAVAILABLE). Instead, per product and process, the
# next transaction takes every hold waiting (up to CHECKOUT_BATCH_MAX): 200 at once cost
# about five transactions. A hold waits at most CHECKOUT_QUEUE_SECONDS for its transaction
# to start (claimed: it cannot expire), then at most CHECKOUT_TIMEOUT_SECONDS for it to end,
# retries included; 50 holds measured 0.1 to 0.25 s (0.5 s with a write-conflict retry).
CHECKOUT_TIMEOUT_SECONDS = 5.0
CHECKOUT_QUEUE_SECONDS = 15.0
CHECKOUT_BATCH_MAX = 50
# Order transactions at once per process, over all products.
CHECKOUT_TRANSACTIONS = 4
# A claim older than this is abandoned (its process died mid-checkout). Well above
# CHECKOUT_QUEUE_SECONDS + CHECKOUT_TIMEOUT_SECONDS, so a live checkout has always given up
# before it is swept.
ABANDONED_CLAIM_MS = 30_000


def system_clock() -> int:
    return time.time_ns() // 1_000_000


@contextlib.contextmanager
def _counted(counter: Counter, success: str) -> Iterator[None]:
    """Counts one call under `success`, or under its error's code."""
    try:
        yield
    except ReservationError as error:
        counter.labels(error.code.value).inc()
        raise
    except InvalidInput:
        counter.labels("BAD_USER_INPUT").inc()
        raise
    counter.labels(success).inc()


__all__ = [
    "Hold",
    "ReservationEngine",
    "ReservationId",
    "Sale",
    "StockCounters",
    "text",
    "to_datetime",
    "to_ms",
]


@dataclass(eq=False)
class _Queued:
    """A claimed hold waiting for its product's next order transaction."""

    hold: Hold
    taken: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: asyncio.Future[Sale] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class _Refused(Exception):
    """An order transaction for several holds refused as a whole (not all of them fit the
    stock guard, or one already has an order): each hold goes on its own instead."""


def unguessable_id() -> ObjectId:
    """A hold or order id nobody can derive from another one (96 random bits); ObjectIds
    from a counter would make one customer's id another's minus one."""
    return ObjectId(os.urandom(12))


class ReservationEngine:
    def __init__(
        self,
        redis: Redis,
        database: AsyncDatabase[dict[str, Any]],
        *,
        default_hold_seconds: int,
        clock: Clock = system_clock,
    ) -> None:
        self.redis = redis
        self.store = StockStore(redis)
        self.database = database
        self.default_hold_ms = default_hold_seconds * 1000
        self.clock = clock
        self._products = database["products"]
        self._reservations = database["reservations"]
        self._orders = database["orders"]
        self._loading: dict[ObjectId, asyncio.Future[None]] = {}
        self._transactions = asyncio.Semaphore(CHECKOUT_TRANSACTIONS)
        self._checkout_queues: dict[ObjectId, list[_Queued]] = {}
        self._checkout_drainers: dict[ObjectId, asyncio.Task[None]] = {}

    # -- loading and counters -------------------------------------------------------------

    async def ensure_loaded(self, product_id: ObjectId) -> None:
        """Load the product's counters and recorded holds from MongoDB if Redis lacks them.
        Idempotent and safe to race across processes: the script loads only when the
        product is missing. Within a process, concurrent callers share one load (a stampede
        on a cold product would otherwise read MongoDB once per request). Raises
        ProductMissing."""
        pending = self._loading.get(product_id)
        if pending is None:
            pending = asyncio.ensure_future(self._load(product_id))
            self._loading[product_id] = pending
            pending.add_done_callback(lambda _: self._loading.pop(product_id, None))
        await asyncio.shield(pending)

    async def _load(self, product_id: ObjectId) -> None:
        product = await self._products.find_one({"_id": product_id})
        if product is None:
            raise ProductMissing(product_id)
        # Orders first, then the ACTIVE holds: a checkout committing in between shows as
        # COMPLETED in the second read (one transaction writes both), so it is counted by
        # neither and its commit in Redis counts it; a hold read as ACTIVE whose order the
        # first read saw cannot exist.
        orders = await self.recorded_orders(product_id)
        sold = {order.hold_id for order in orders}
        active = [
            hold_from_document(document)
            async for document in self._reservations.find(
                {"product_id": product_id, "status": ReservationStatus.ACTIVE.value}
            )
            if document["_id"] not in sold
        ]
        if await self.store.load(product, self._hold_ms(product), active, orders):
            logger.info("loaded product %s into Redis (%d active holds)", product_id, len(active))

    async def recorded_orders(self, product_id: ObjectId) -> list[RecordedOrder]:
        """MongoDB's orders of a product, as the counters need them."""
        return [
            RecordedOrder(order["reservation_id"], order["customer_id"], order["quantity"])
            async for order in self._orders.find(
                {"product_id": product_id}, {"reservation_id": 1, "customer_id": 1, "quantity": 1}
            )
        ]

    async def counters(self, product_ids: Iterable[ObjectId]) -> dict[ObjectId, StockCounters]:
        """Live counters for these products, in one round trip (loading missing ones)."""
        ids = list(dict.fromkeys(product_ids))
        found = await self.store.counters(ids)
        missing = [product_id for product_id in ids if product_id not in found]
        if missing:
            for product_id in missing:
                with contextlib.suppress(ProductMissing):
                    await self.ensure_loaded(product_id)
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

    async def lower_total(self, product_id: ObjectId, total: int) -> int | None:
        """Before MongoDB's total stock drops: apply the drop in Redis, refused below what is
        sold or held. Returns None when allowed, else the committed units."""
        return await self.store.lower_total(product_id, total)

    async def sync_rules(self, product: dict[str, Any], *, force: bool = False) -> None:
        """After MongoDB changed a product: copy its total and sale rules to Redis (a newer
        version only, unless forced)."""
        await self.store.set_rules(product, self._hold_ms(product), self.clock(), force=force)

    def _hold_ms(self, product: dict[str, Any]) -> int:
        seconds = product.get("hold_seconds")
        return int(seconds) * 1000 if seconds else self.default_hold_ms

    # -- the hot path --------------------------------------------------------------------

    async def reserve(
        self,
        customer_id: ObjectId,
        product_id: ObjectId,
        quantity: int,
        idempotency_key: str | None = None,
    ) -> Hold:
        """Hold `quantity` units for the customer, atomically: sale window, per-customer
        limit, stock and idempotency are decided in one script. The same idempotency key
        (per customer and product, remembered for IDEMPOTENCY_TTL_SECONDS) returns the first
        hold and changes nothing; the same key with another quantity is
        IdempotencyKeyReused. Raises SaleNotActive, LimitPerCustomer, OutOfStock,
        ProductMissing, InvalidInput, ServiceUnavailable."""
        with _counted(RESERVATIONS, "RESERVED"):
            if not 1 <= quantity <= QUANTITY_MAX:
                raise InvalidInput("quantity", f"must be between 1 and {QUANTITY_MAX}")
            if idempotency_key is not None and not (
                1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX
            ):
                raise InvalidInput(
                    "idempotencyKey", f"must be 1 to {IDEMPOTENCY_KEY_MAX} characters long"
                )
            rid = ReservationId(product_id, unguessable_id())
            now = self.clock()
            for attempt in range(2):
                outcome = await self.store.reserve(
                    rid, customer_id, quantity, now, idempotency_key, IDEMPOTENCY_TTL_SECONDS
                )
                if outcome.kind == "NOT_LOADED" and attempt == 0:
                    await self.ensure_loaded(product_id)
                    continue
                break
            if outcome.kind == "OK":
                return Hold(
                    id=rid,
                    customer_id=customer_id,
                    quantity=quantity,
                    status=ReservationStatus.ACTIVE,
                    created_at=to_datetime(now),
                    expires_at=to_datetime(outcome.expires_ms),
                    idempotency_key=idempotency_key,
                )
            if outcome.kind == "EXISTING":
                assert outcome.existing is not None
                existing = await self.get(ReservationId(product_id, outcome.existing))
                if existing is None:  # recorded nowhere yet: cannot happen once persisted
                    raise ServiceUnavailable("the reservation store")
                if existing.quantity != quantity:
                    raise IdempotencyKeyReused(existing.quantity)
                return existing
            if outcome.kind == "SALE_NOT_ACTIVE":
                raise SaleNotActive()
            if outcome.kind == "LIMIT_PER_CUSTOMER":
                raise LimitPerCustomer(outcome.limit, outcome.already)
            if outcome.kind == "OUT_OF_STOCK":
                raise OutOfStock(outcome.available)
            raise ProductMissing(product_id)

    async def get(self, rid: ReservationId) -> Hold | None:
        """The hold, whoever holds it (an admin's view): see `find`."""
        return await self.find(rid, None)

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
            recorded = await self._recorded_hold(rid)
            if not visible(recorded):
                raise
            return recorded
        if visible(live):
            return live
        # Redis has another's hold, or none: MongoDB is read either way.
        recorded = await self._recorded_hold(rid)
        return recorded if live is None and visible(recorded) else None

    async def _recorded_hold(self, rid: ReservationId) -> Hold | None:
        # By _id alone (any server answers that from its index), then the product compared
        # here: a filter on both made SecantusDB scan the collection.
        document = await self._reservations.find_one({"_id": rid.hold_id})
        if document is None or document.get("product_id") != rid.product_id:
            return None
        return hold_from_document(document)

    async def _owned(self, rid: ReservationId, customer_id: ObjectId | None) -> Hold:
        """The hold, if the caller may see it (see `find`); else ReservationNotFound."""
        hold = await self.find(rid, customer_id)
        if hold is None:
            raise ReservationNotFound(rid)
        return hold

    async def cancel(self, rid: ReservationId, customer_id: ObjectId | None) -> Hold:
        """End an ACTIVE hold and return its stock, atomically. `customer_id` None means an
        admin acting on anyone's hold; a customer gets RESERVATION_NOT_FOUND for holds of
        others. A hold past its deadline has expired, whether or not the tick ran. Raises
        ReservationNotFound, ReservationExpired, ReservationNotActive,
        CheckoutInProgress."""
        outcome, status = await self.store.release(
            rid, self.clock(), ReservationStatus.CANCELLED, customer_id
        )
        if outcome == "OK":
            return await self._owned(rid, customer_id)
        if outcome == "CLAIMED":
            raise CheckoutInProgress()
        if outcome == "EXPIRED":
            raise ReservationExpired()
        hold = await self._owned(rid, customer_id)  # NOT_FOUND in Redis: maybe recorded
        raise self._not_active(status or hold.status)

    @staticmethod
    def _not_active(status: ReservationStatus | str) -> Exception:
        if ReservationStatus(status) is ReservationStatus.EXPIRED:
            return ReservationExpired()
        return ReservationNotActive(ReservationStatus(status).value)

    # -- checkout ------------------------------------------------------------------------

    async def checkout(self, rid: ReservationId, customer_id: ObjectId | None) -> Sale:
        """Buy a held reservation (payment is mocked). Durable before it answers: claim in
        Redis (one checkout of a hold at a time), then one MongoDB transaction (order,
        sold += quantity guarded by total stock, reservation COMPLETED), shared with the
        checkouts of the same product waiting in this process at that moment, then count
        the sale in Redis, once. A retry, or a second checkout of the same hold, returns the same
        order once it is durable, and CHECKOUT_IN_PROGRESS before. A failure before the
        transaction commits puts the hold back as it was; an unknown outcome leaves it
        claimed for a retry or the recovery sweep to settle from MongoDB. Raises
        ReservationNotFound, ReservationExpired, ReservationNotActive, CheckoutInProgress,
        OutOfStock, ServiceUnavailable."""
        with _counted(CHECKOUTS, "COMPLETED"):
            token = secrets.token_hex(8)
            try:
                claim = await self.store.claim(rid, self.clock(), customer_id, token)
            except ServiceUnavailable:
                # Redis out of reach: a hold already bought is still answered, by its order.
                sale = await self._recorded_sale(rid.hold_id)
                if sale is None or customer_id not in (None, sale.hold.customer_id):
                    raise
                return sale
            if claim.kind == "EXPIRED":
                raise ReservationExpired()
            if claim.kind != "OK":
                return await self._checkout_again(rid, customer_id, claim.kind, claim.status)
            assert claim.hold is not None
            sale = await self._record_claimed(claim.hold, token)
            try:
                await self.commit(sale.hold)
            except ServiceUnavailable:
                # The order is durable: that is the answer. The hold stays claimed, and the
                # recovery sweep counts the sale in Redis once it answers again.
                logger.warning("sale of %s is durable; Redis will count it later", rid)
            return sale

    async def _checkout_again(
        self, rid: ReservationId, customer_id: ObjectId | None, kind: str, status: str | None
    ) -> Sale:
        """A hold that could not be claimed: claimed by another checkout, ended, or unknown
        to Redis. Its order, if MongoDB has one, is the answer (counted in Redis too)."""
        if kind == "IN_PROGRESS":
            sale = await self._recorded_sale(rid.hold_id)
            if sale is None:
                raise CheckoutInProgress()
            await self.commit(sale.hold)
            return sale
        hold = await self._owned(rid, customer_id)
        if hold.status is ReservationStatus.COMPLETED:
            sale = await self._recorded_sale(rid.hold_id)
            if sale is not None:
                await self.commit(sale.hold)
                return sale
        raise self._not_active(status or hold.status)

    async def _record_claimed(self, hold: Hold, token: str) -> Sale:
        """The durable step for a hold this checkout claimed, in its product's next order
        transaction, with the claim put back (by its token) whenever the order is known not
        to exist."""
        queued = _Queued(hold)
        queue = self._checkout_queues.setdefault(hold.product_id, [])
        queue.append(queued)
        drainer = self._checkout_drainers.get(hold.product_id)
        if drainer is None or drainer.done():
            self._checkout_drainers[hold.product_id] = asyncio.create_task(
                self._drain_checkouts(hold.product_id, queue)
            )
        try:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CHECKOUT_QUEUE_SECONDS):
                    await queued.taken.wait()
        finally:
            if not queued.taken.is_set():
                # Withdrawn before any transaction took it: it is not sold. (A caller that
                # went away leaves the hold claimed; the recovery sweep puts it back.)
                queue.remove(queued)
        if not queued.taken.is_set():
            await self.store.unclaim(hold.id, token)
            raise ServiceUnavailable(MONGODB)
        try:
            return await queued.outcome
        except OutOfStock:
            await self.store.unclaim(hold.id, token)
            raise
        except PyMongoError as exc:
            if exc.has_error_label("UnknownTransactionCommitResult"):
                # The commit may have landed (a timeout or a lost reply): putting the hold
                # back could sell its units twice. It stays claimed (reserved, unable to
                # expire); a retried checkout finds the order, and the recovery sweep
                # settles it from MongoDB if nobody retries.
                logger.warning("checkout of %s: outcome unknown, left claimed: %s", hold.id, exc)
                raise ServiceUnavailable(MONGODB) from None
            logger.warning("checkout of %s not recorded, hold put back: %s", hold.id, exc)
            await self.store.unclaim(hold.id, token)
            raise ServiceUnavailable(MONGODB) from None

    async def _drain_checkouts(self, product_id: ObjectId, queue: list[_Queued]) -> None:
        """The product's order transactions in this process, one at a time, each taking
        every hold waiting (up to CHECKOUT_BATCH_MAX), until none waits."""
        try:
            while queue:
                async with self._transactions:
                    batch = queue[:CHECKOUT_BATCH_MAX]
                    del queue[: len(batch)]
                    for queued in batch:
                        queued.taken.set()
                    await self._record_batch(batch)
        finally:
            if self._checkout_drainers.get(product_id) is asyncio.current_task():
                del self._checkout_drainers[product_id]
            if not queue:
                self._checkout_queues.pop(product_id, None)

    async def _record_batch(self, batch: list[_Queued]) -> None:
        """Record these holds' sales and hand each waiting checkout its own outcome: its
        Sale, OutOfStock, or the PyMongoError that stopped it."""
        outcomes: list[Sale | Exception]
        try:
            if len(batch) == 1:
                outcomes = [await self._record_sale(batch[0].hold)]
            else:
                outcomes = await self._record_sales([queued.hold for queued in batch])
        except Exception as exc:  # each checkout of the batch raises it as its own
            outcomes = [exc] * len(batch)
        except BaseException:
            for queued in batch:  # stopped (the loop is closing): no answer will come
                queued.outcome.cancel()
            raise
        for queued, outcome in zip(batch, outcomes, strict=True):
            if queued.outcome.done():  # its caller went away: the recovery sweep settles it
                continue
            if isinstance(outcome, Exception):
                queued.outcome.set_exception(outcome)
            else:
                queued.outcome.set_result(outcome)

    async def _record_sales(self, holds: list[Hold]) -> list[Sale | Exception]:
        """The durable step for several holds of one product: one transaction for all of
        them (retried on transient errors), all within CHECKOUT_TIMEOUT_SECONDS. If it is
        refused as a whole, each hold goes through `_record_sale`, in order, within what
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
                    outcomes.append(await self._record_sale(hold))
                except (OutOfStock, PyMongoError) as exc:
                    outcomes.append(exc)
            return outcomes

    async def _sales_transaction(
        self, holds: list[Hold], now: datetime, session: AsyncClientSession
    ) -> list[Sale]:
        """`_record_sale`'s transaction for several holds of one product at once: the same
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
            [_order_document(sale) for sale in sales], ordered=True, session=session
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

    async def commit(self, hold: Hold) -> None:
        """Count a durable sale in Redis. Idempotent: a sale is counted once however often
        and however late this runs."""
        outcome = await self.store.commit(hold, self.clock())
        if outcome in ("ABSORBED", "LATE"):
            logger.warning(
                "sale of %s counted in Redis after the hold was lost (%s)", hold.id, outcome
            )

    async def _record_sale(self, hold: Hold) -> Sale:
        """The durable step: one transaction, retried on transient errors within
        CHECKOUT_TIMEOUT_SECONDS, idempotent (the order is unique per reservation)."""
        now = to_datetime(self.clock())

        async def transaction(session: AsyncClientSession) -> Sale:
            existing = await self._recorded_sale(hold.id.hold_id, session)
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
            await self._orders.insert_one(_order_document(sale), session=session)
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
                    sale = await self._recorded_sale(hold.id.hold_id)
                    if sale is None:
                        raise
                    return sale

    async def _recorded_sale(
        self, hold_id: ObjectId, session: AsyncClientSession | None = None
    ) -> Sale | None:
        order = await self._orders.find_one({"reservation_id": hold_id}, session=session)
        if order is None:
            return None
        reservation = await self._reservations.find_one({"_id": hold_id}, session=session)
        return _sale(order, reservation)

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
        return [_sale(order, reservations.get(order["reservation_id"])) for order in orders]

    # -- background work -----------------------------------------------------------------

    async def expire_due(self, product_ids: Iterable[ObjectId], now: int | None = None) -> int:
        """End every hold past its deadline, returning its stock; one pipelined round trip
        for all products (concurrent calls on a cluster). Safe to run from many processes at
        once."""
        ids = list(product_ids)
        if not ids:
            return 0
        expired = await self.store.expire_due(
            ids, self.clock() if now is None else now, EXPIRE_BATCH
        )
        HOLDS_EXPIRED.inc(expired)
        return expired

    async def recover_claims(self, product_ids: Iterable[ObjectId], now: int | None = None) -> int:
        """Finish or undo checkouts abandoned mid-way (their process died): a claim older
        than ABANDONED_CLAIM_MS is committed if its order exists in MongoDB, else put back.
        Returns how many were settled."""
        moment = self.clock() if now is None else now
        settled = 0
        for product_id in product_ids:
            for stale in await self.store.stale_claims(product_id, moment - ABANDONED_CLAIM_MS):
                sale = await self._recorded_sale(stale.rid.hold_id)
                if sale is not None:
                    await self.commit(sale.hold)
                else:
                    await self.store.unclaim(stale.rid, stale.token)
                settled += 1
        return settled

    async def load_missing(self, product_ids: Iterable[ObjectId]) -> int:
        """Rebuild the counters of products missing from Redis from MongoDB. Returns how
        many products are loaded."""
        checked = 0
        for product_id in product_ids:
            if not await self.store.loaded(product_id):
                try:
                    await self.ensure_loaded(product_id)
                except ProductMissing:
                    continue
            checked += 1
        return checked

    def hold_seconds(self, product_hold_seconds: int | None) -> int:
        """How long a hold of a product with this `hold_seconds` setting lasts: its own,
        else the default (what the engine gives Redis for the product's holds)."""
        return self._hold_ms({"hold_seconds": product_hold_seconds}) // 1000


def _sale(order: dict[str, Any], reservation: dict[str, Any] | None) -> Sale:
    hold = (
        hold_from_document(reservation)
        if reservation
        else Hold(
            id=ReservationId(order["product_id"], order["reservation_id"]),
            customer_id=order["customer_id"],
            quantity=order["quantity"],
            status=ReservationStatus.COMPLETED,
            created_at=order["created_at"],
            expires_at=order["created_at"],
        )
    )
    return Sale(
        order["_id"], hold, order["unit_price_cents"], order["total_cents"], order["created_at"]
    )


def _order_document(sale: Sale) -> dict[str, Any]:
    hold = sale.hold
    return {
        "_id": sale.order_id,
        "reservation_id": hold.id.hold_id,
        "product_id": hold.product_id,
        "customer_id": hold.customer_id,
        "quantity": hold.quantity,
        "unit_price_cents": sale.unit_price_cents,
        "total_cents": sale.total_cents,
        "created_at": sale.created_at,
    }


def _completion(hold: Hold, now: datetime) -> tuple[dict[str, Any], dict[str, Any]]:
    """The filter and update that record the hold COMPLETED (inserting it if the persister
    has not recorded it yet)."""
    return {"_id": hold.id.hold_id}, {
        "$set": {"status": ReservationStatus.COMPLETED.value, "ended_at": now},
        "$setOnInsert": {
            "product_id": hold.product_id,
            "customer_id": hold.customer_id,
            "quantity": hold.quantity,
            "created_at": hold.created_at,
            "expires_at": hold.expires_at,
            "idempotency_key": hold.idempotency_key,
        },
    }


def _count_completed(funnel: FunnelMoves, hold: Hold, recorded: dict[str, Any] | None) -> None:
    """Move the funnel rollup for a hold becoming COMPLETED, from its recorded state."""
    completed = ReservationStatus.COMPLETED.value
    if recorded is None:
        funnel.created(hold.product_id, hold.created_at, completed)
    elif recorded["status"] != completed:
        funnel.moved(hold.product_id, recorded["created_at"], recorded["status"], completed)
