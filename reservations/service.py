"""The reservation engine's operations. Each state change is one Lua script in Redis;
checkout is made durable in MongoDB (a transaction) before it answers.

Invariants it keeps (see SPEC.md): sold + reserved <= total stock for every product, at
every instant, across any number of processes; every hold ends exactly once; a retry with
the same idempotency key returns the first result and changes nothing.
"""

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import pymongo
from bson import ObjectId
from bson.errors import InvalidId
from prometheus_client import Counter
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError
from redis.asyncio import Redis
from redis.exceptions import RedisError

from analytics.rollups import FunnelMoves, add_sale
from flashsale.errors import InvalidInput
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
from reservations.keys import ProductKeys
from reservations.scripts import Scripts
from telemetry import CHECKOUTS, HOLDS_EXPIRED, RESERVATIONS

logger = logging.getLogger("flashsale.reservations")

Clock = Callable[[], int]  # milliseconds since the epoch
QUANTITY_MAX = 1_000
IDEMPOTENCY_KEY_MAX = 128
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
EXPIRE_BATCH = 500
CHECKOUT_TIMEOUT_SECONDS = 5.0
# Checkout transactions at once per process. Checkouts of one product all write its document,
# so past a few they only conflict and retry inside the database; the rest wait here, in
# order, for at most CHECKOUT_QUEUE_SECONDS (their holds are claimed: they cannot expire).
CHECKOUT_TRANSACTIONS = 4
CHECKOUT_QUEUE_SECONDS = 15.0
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


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def to_ms(moment: datetime | None) -> int:
    return -1 if moment is None else int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class ReservationId:
    """A hold's public id: its product's id and its own (48 hex digits), so any process can
    find the hold's Redis slot without a global index."""

    product_id: ObjectId
    hold_id: ObjectId

    def __str__(self) -> str:
        return f"{self.product_id}{self.hold_id}"

    @classmethod
    def parse(cls, raw: str, field: str = "reservationId") -> "ReservationId":
        try:
            if len(raw) != 48:
                raise InvalidId
            return cls(ObjectId(raw[:24]), ObjectId(raw[24:]))
        except (InvalidId, TypeError):
            raise InvalidInput(field, "is not a valid reservation id") from None


@dataclass(frozen=True)
class Hold:
    id: ReservationId
    customer_id: ObjectId
    quantity: int
    status: ReservationStatus
    created_at: datetime
    expires_at: datetime
    idempotency_key: str | None = None
    ended_at: datetime | None = None

    @property
    def product_id(self) -> ObjectId:
        return self.id.product_id


@dataclass(frozen=True)
class StockCounters:
    total: int
    sold: int
    reserved: int

    @property
    def available(self) -> int:
        return self.total - self.sold - self.reserved


@dataclass(frozen=True)
class Sale:
    """A completed checkout: the order as stored in MongoDB."""

    order_id: ObjectId
    hold: Hold
    unit_price_cents: int
    total_cents: int
    created_at: datetime


def _hold_from_redis(rid: ReservationId, raw: str) -> Hold:
    data = json.loads(raw)
    ended = data.get("en")
    return Hold(
        id=rid,
        customer_id=ObjectId(data["c"]),
        quantity=int(data["q"]),
        status=ReservationStatus(data["s"]),
        created_at=to_datetime(int(data["cr"])),
        expires_at=to_datetime(int(data["ex"])),
        idempotency_key=data.get("k") or None,
        ended_at=to_datetime(int(ended)) if ended else None,
    )


def _hold_from_document(document: dict[str, Any]) -> Hold:
    return Hold(
        id=ReservationId(document["product_id"], document["_id"]),
        customer_id=document["customer_id"],
        quantity=document["quantity"],
        status=ReservationStatus(document["status"]),
        created_at=document["created_at"],
        expires_at=document["expires_at"],
        idempotency_key=document.get("idempotency_key"),
        ended_at=document.get("ended_at"),
    )


def text(value: Any) -> str:
    """A Redis reply value as str (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else str(value)


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
        self.database = database
        self.scripts = Scripts(redis)
        self.default_hold_ms = default_hold_seconds * 1000
        self.clock = clock
        self._products = database["products"]
        self._reservations = database["reservations"]
        self._orders = database["orders"]
        self._loading: dict[ObjectId, asyncio.Future[None]] = {}
        self._transactions = asyncio.Semaphore(CHECKOUT_TRANSACTIONS)

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
        holds = [
            {
                "r": str(document["_id"]),
                "c": str(document["customer_id"]),
                "q": document["quantity"],
                "cr": to_ms(document["created_at"]),
                "ex": to_ms(document["expires_at"]),
                "k": document.get("idempotency_key") or "",
            }
            async for document in self._reservations.find(
                {"product_id": product_id, "status": ReservationStatus.ACTIVE.value}
            )
        ]
        bought: dict[str, int] = {}
        async for row in await self._orders.aggregate(
            [
                {"$match": {"product_id": product_id}},
                {"$group": {"_id": "$customer_id", "units": {"$sum": "$quantity"}}},
            ]
        ):
            bought[str(row["_id"])] = int(row["units"])
        keys = ProductKeys(product_id)
        loaded = await self.scripts.run(
            "load",
            [keys.stock, keys.holds, keys.expiry, keys.customers],
            [
                product["total_stock"],
                product["sold"],
                product["max_per_customer"],
                to_ms(product.get("sale_starts_at")),
                to_ms(product.get("sale_ends_at")),
                self._hold_ms(product),
                json.dumps(holds),
                json.dumps(bought),
                product.get("version", 0),
            ],
        )
        if loaded:
            logger.info("loaded product %s into Redis (%d active holds)", product_id, len(holds))

    async def counters(self, product_ids: Iterable[ObjectId]) -> dict[ObjectId, StockCounters]:
        """Live counters for these products, in one round trip (loading missing ones)."""
        ids = list(dict.fromkeys(product_ids))
        found: dict[ObjectId, StockCounters] = {}
        for attempt in range(2):
            try:
                async with self.redis.pipeline(transaction=False) as pipe:
                    for product_id in ids:
                        pipe.hmget(ProductKeys(product_id).stock, "total", "sold", "reserved")
                    rows = await pipe.execute()
            except RedisError as exc:
                logger.warning("reading stock counters failed: %s", exc)
                raise ServiceUnavailable("the stock store (Redis)") from None
            missing = []
            for product_id, row in zip(ids, rows, strict=True):
                if row[0] is None:
                    missing.append(product_id)
                else:
                    found[product_id] = StockCounters(*(int(text(v)) for v in row))
            if not missing or attempt == 1:
                return found
            for product_id in missing:
                try:
                    await self.ensure_loaded(product_id)
                except ProductMissing:
                    pass
            ids = missing
        return found

    async def lower_total(self, product_id: ObjectId, total: int) -> int | None:
        """Before MongoDB's total stock drops: apply the drop in Redis, refused below what is
        sold or held. Returns None when allowed, else the committed units."""
        result = await self._run("lower_total", [ProductKeys(product_id).stock], [total])
        return int(result[1]) if text(result[0]) == "BELOW_COMMITTED" else None

    async def sync_rules(self, product: dict[str, Any], *, force: bool = False) -> None:
        """After MongoDB changed a product: copy its total and sale rules to Redis (a newer
        version only, unless forced)."""
        keys = ProductKeys(product["_id"])
        await self._run(
            "set_rules",
            [keys.stock],
            [
                product["total_stock"],
                product["max_per_customer"],
                to_ms(product.get("sale_starts_at")),
                to_ms(product.get("sale_ends_at")),
                self._hold_ms(product),
                keys.events,
                self.clock(),
                product.get("version", 0),
                "force" if force else "",
            ],
        )

    # -- the hot path --------------------------------------------------------------------

    async def reserve(
        self,
        customer_id: ObjectId,
        product_id: ObjectId,
        quantity: int,
        idempotency_key: str | None = None,
    ) -> Hold:
        with _counted(RESERVATIONS, "RESERVED"):
            return await self._reserve(customer_id, product_id, quantity, idempotency_key)

    async def _reserve(
        self,
        customer_id: ObjectId,
        product_id: ObjectId,
        quantity: int,
        idempotency_key: str | None = None,
    ) -> Hold:
        """Hold `quantity` units for the customer, atomically: sale window, per-customer
        limit, stock and idempotency are decided in one script. The same idempotency key
        returns the first hold and changes nothing; the same key with another quantity is
        IdempotencyKeyReused. Raises SaleNotActive, LimitPerCustomer, OutOfStock,
        ProductMissing, InvalidInput, ServiceUnavailable."""
        if not 1 <= quantity <= QUANTITY_MAX:
            raise InvalidInput("quantity", f"must be between 1 and {QUANTITY_MAX}")
        if idempotency_key is not None and not 1 <= len(idempotency_key) <= IDEMPOTENCY_KEY_MAX:
            raise InvalidInput(
                "idempotencyKey", f"must be 1 to {IDEMPOTENCY_KEY_MAX} characters long"
            )
        keys = ProductKeys(product_id)
        hold_id = ObjectId()
        now = self.clock()
        for attempt in range(2):
            result = await self._run(
                "reserve",
                [
                    keys.stock,
                    keys.holds,
                    keys.expiry,
                    keys.customers,
                    keys.idempotency(customer_id, idempotency_key or "-"),
                    keys.log,
                ],
                [
                    str(hold_id),
                    str(customer_id),
                    quantity,
                    now,
                    idempotency_key or "",
                    keys.events,
                    IDEMPOTENCY_TTL_SECONDS,
                ],
            )
            outcome = text(result[0])
            if outcome == "NOT_LOADED" and attempt == 0:
                await self.ensure_loaded(product_id)
                continue
            break
        if outcome == "OK":
            return Hold(
                id=ReservationId(product_id, hold_id),
                customer_id=customer_id,
                quantity=quantity,
                status=ReservationStatus.ACTIVE,
                created_at=to_datetime(now),
                expires_at=to_datetime(int(result[2])),
                idempotency_key=idempotency_key,
            )
        if outcome == "EXISTING":
            existing = await self.get(ReservationId(product_id, ObjectId(text(result[1]))))
            if existing is None:  # recorded nowhere yet: cannot happen once persisted
                raise ServiceUnavailable("the reservation store")
            if existing.quantity != quantity:
                raise IdempotencyKeyReused(existing.quantity)
            return existing
        if outcome == "SALE_NOT_ACTIVE":
            raise SaleNotActive()
        if outcome == "LIMIT_PER_CUSTOMER":
            raise LimitPerCustomer(int(result[1]), int(result[2]))
        if outcome == "OUT_OF_STOCK":
            raise OutOfStock(int(result[1]))
        raise ProductMissing(product_id)

    def _hold_ms(self, product: dict[str, Any]) -> int:
        seconds = product.get("hold_seconds")
        return int(seconds) * 1000 if seconds else self.default_hold_ms

    async def get(self, rid: ReservationId) -> Hold | None:
        """The hold as Redis has it (live), else as MongoDB recorded it."""
        raw = await self.redis.hget(ProductKeys(rid.product_id).holds, str(rid.hold_id))
        if raw is not None:
            return _hold_from_redis(rid, text(raw))
        document = await self._reservations.find_one(
            {"_id": rid.hold_id, "product_id": rid.product_id}
        )
        return _hold_from_document(document) if document else None

    async def _owned(self, rid: ReservationId, customer_id: ObjectId | None) -> Hold:
        hold = await self.get(rid)
        if hold is None or (customer_id is not None and hold.customer_id != customer_id):
            raise ReservationNotFound(rid)
        return hold

    async def cancel(self, rid: ReservationId, customer_id: ObjectId | None) -> Hold:
        """End an ACTIVE hold and return its stock, atomically. `customer_id` None means an
        admin acting on anyone's hold; a customer gets RESERVATION_NOT_FOUND for holds of
        others. Raises ReservationNotFound, ReservationExpired, ReservationNotActive,
        CheckoutInProgress."""
        keys = ProductKeys(rid.product_id)
        result = await self._run(
            "release",
            [keys.stock, keys.holds, keys.expiry, keys.customers, keys.log],
            [
                str(rid.hold_id),
                self.clock(),
                ReservationStatus.CANCELLED.value,
                keys.events,
                str(customer_id) if customer_id else "",
            ],
        )
        outcome = text(result[0])
        if outcome == "OK":
            return await self._owned(rid, customer_id)
        if outcome == "CLAIMED":
            raise CheckoutInProgress()
        hold = await self._owned(rid, customer_id)  # NOT_FOUND in Redis: maybe recorded
        raise self._not_active(hold.status)

    @staticmethod
    def _not_active(status: ReservationStatus | str) -> Exception:
        if ReservationStatus(status) is ReservationStatus.EXPIRED:
            return ReservationExpired()
        return ReservationNotActive(ReservationStatus(status).value)

    # -- checkout ------------------------------------------------------------------------

    async def checkout(self, rid: ReservationId, customer_id: ObjectId | None) -> Sale:
        """See `_checkout`; counted by outcome."""
        with _counted(CHECKOUTS, "COMPLETED"):
            return await self._checkout(rid, customer_id)

    async def _checkout(self, rid: ReservationId, customer_id: ObjectId | None) -> Sale:
        """Buy a held reservation (payment is mocked). Durable before it answers: claim in
        Redis, then one MongoDB transaction (order, sold += quantity guarded by total
        stock, reservation COMPLETED), then commit in Redis. Every step is idempotent; a
        failure before the transaction commits puts the hold back as it was. Raises
        ReservationNotFound, ReservationExpired, ReservationNotActive, OutOfStock,
        ServiceUnavailable."""
        keys = ProductKeys(rid.product_id)
        claim = await self._run(
            "claim",
            [keys.holds, keys.expiry, keys.claims],
            [str(rid.hold_id), self.clock(), str(customer_id) if customer_id else ""],
        )
        outcome = text(claim[0])
        if outcome == "EXPIRED":
            raise ReservationExpired()
        if outcome != "OK":
            hold = await self._owned(rid, customer_id)
            if hold.status is ReservationStatus.COMPLETED:
                sale = await self._recorded_sale(rid.hold_id)
                if sale is not None:
                    return sale  # a retry of a finished checkout: same answer
            raise self._not_active(hold.status)
        hold = Hold(
            id=rid,
            customer_id=ObjectId(text(claim[1])),
            quantity=int(claim[2]),
            status=ReservationStatus.ACTIVE,
            created_at=to_datetime(int(claim[3])),
            expires_at=to_datetime(int(claim[4])),
            idempotency_key=text(claim[5]) or None,
        )
        try:
            async with asyncio.timeout(CHECKOUT_QUEUE_SECONDS):
                await self._transactions.acquire()
        except TimeoutError:
            await self._unclaim(rid)
            raise ServiceUnavailable("the order store (MongoDB)") from None
        try:
            sale = await self._record_sale(hold)
        except OutOfStock:
            await self._unclaim(rid)
            raise
        except PyMongoError as exc:
            if exc.has_error_label("UnknownTransactionCommitResult"):
                # The commit may have landed (a timeout or a lost reply): putting the hold
                # back could sell its units twice. It stays claimed (reserved, unable to
                # expire); a retried checkout finds the order, and the recovery sweep
                # settles it from MongoDB if nobody retries.
                logger.warning("checkout of %s: outcome unknown, left claimed: %s", rid, exc)
                raise ServiceUnavailable("the order store (MongoDB)") from None
            logger.warning("checkout of %s not recorded, hold put back: %s", rid, exc)
            await self._unclaim(rid)
            raise ServiceUnavailable("the order store (MongoDB)") from None
        finally:
            self._transactions.release()
        await self.commit(rid, hold)
        return sale

    async def commit(self, rid: ReservationId, hold: Hold) -> None:
        keys = ProductKeys(rid.product_id)
        await self._run(
            "commit",
            [keys.stock, keys.holds, keys.expiry, keys.claims, keys.log, keys.customers],
            [str(rid.hold_id), self.clock(), keys.events, str(hold.customer_id), hold.quantity],
        )

    async def _unclaim(self, rid: ReservationId) -> None:
        keys = ProductKeys(rid.product_id)
        await self._run("unclaim", [keys.holds, keys.expiry, keys.claims], [str(rid.hold_id)])

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
            order_id = ObjectId()
            price = int(product["price_cents"])
            recorded = await self._reservations.find_one(
                {"_id": hold.id.hold_id}, {"status": 1, "created_at": 1}, session=session
            )
            await self._orders.insert_one(
                {
                    "_id": order_id,
                    "reservation_id": hold.id.hold_id,
                    "product_id": hold.product_id,
                    "customer_id": hold.customer_id,
                    "quantity": hold.quantity,
                    "unit_price_cents": price,
                    "total_cents": price * hold.quantity,
                    "created_at": now,
                },
                session=session,
            )
            await self._reservations.update_one(
                {"_id": hold.id.hold_id},
                {
                    "$set": {"status": ReservationStatus.COMPLETED.value, "ended_at": now},
                    "$setOnInsert": {
                        "product_id": hold.product_id,
                        "customer_id": hold.customer_id,
                        "quantity": hold.quantity,
                        "created_at": hold.created_at,
                        "expires_at": hold.expires_at,
                        "idempotency_key": hold.idempotency_key,
                    },
                },
                upsert=True,
                session=session,
            )
            await add_sale(
                self.database,
                session,
                product_id=hold.product_id,
                at=now,
                quantity=hold.quantity,
                revenue_cents=price * hold.quantity,
            )
            funnel = FunnelMoves()
            if recorded is None:
                funnel.created(hold.product_id, hold.created_at, ReservationStatus.COMPLETED.value)
            elif recorded["status"] != ReservationStatus.COMPLETED.value:
                funnel.moved(
                    hold.product_id,
                    recorded["created_at"],
                    recorded["status"],
                    ReservationStatus.COMPLETED.value,
                )
            await funnel.save(self.database, session)
            completed = replace(hold, status=ReservationStatus.COMPLETED, ended_at=now)
            return Sale(order_id, completed, price, price * hold.quantity, now)

        with pymongo.timeout(CHECKOUT_TIMEOUT_SECONDS):
            async with self.database.client.start_session() as session:
                try:
                    return await session.with_transaction(transaction)
                except DuplicateKeyError:  # a concurrent checkout of the same hold won
                    sale = await self._recorded_sale(hold.id.hold_id)
                    assert sale is not None
                    return sale

    async def _recorded_sale(
        self, hold_id: ObjectId, session: AsyncClientSession | None = None
    ) -> Sale | None:
        order = await self._orders.find_one({"reservation_id": hold_id}, session=session)
        if order is None:
            return None
        reservation = await self._reservations.find_one({"_id": hold_id}, session=session)
        hold = (
            _hold_from_document(reservation)
            if reservation
            else Hold(
                id=ReservationId(order["product_id"], hold_id),
                customer_id=order["customer_id"],
                quantity=order["quantity"],
                status=ReservationStatus.COMPLETED,
                created_at=order["created_at"],
                expires_at=order["created_at"],
            )
        )
        return Sale(
            order["_id"],
            hold,
            order["unit_price_cents"],
            order["total_cents"],
            order["created_at"],
        )

    async def customer_holds(
        self, customer_id: ObjectId, status: ReservationStatus | None, limit: int
    ) -> list[Hold]:
        query: dict[str, Any] = {"customer_id": customer_id}
        if status is not None:
            query["status"] = status.value
        cursor = self._reservations.find(query).sort("created_at", -1).limit(limit)
        holds = [_hold_from_document(document) async for document in cursor]
        # An ACTIVE record may already have ended in Redis (the persister is a moment behind).
        live = [
            await self.get(hold.id) if hold.status is ReservationStatus.ACTIVE else hold
            for hold in holds
        ]
        return [
            hold for hold in live if hold is not None and (status is None or hold.status is status)
        ]

    async def customer_sales(self, customer_id: ObjectId, limit: int) -> list[Sale]:
        cursor = self._orders.find({"customer_id": customer_id}).sort("created_at", -1).limit(limit)
        sales = []
        async for order in cursor:
            sale = await self._recorded_sale(order["reservation_id"])
            if sale is not None:
                sales.append(sale)
        return sales

    # -- background work -----------------------------------------------------------------

    async def expire_due(self, product_ids: Iterable[ObjectId], now: int | None = None) -> int:
        """End every hold past its deadline, returning its stock; one pipelined round trip
        for all products (concurrent calls on a cluster). Safe to run from many processes at
        once."""
        moment = self.clock() if now is None else now
        ids = list(product_ids)
        if not ids:
            return 0
        calls = []
        for product_id in ids:
            keys = ProductKeys(product_id)
            calls.append(
                (
                    [keys.stock, keys.holds, keys.expiry, keys.customers, keys.log],
                    [moment, EXPIRE_BATCH, keys.events],
                )
            )
        results = await self.scripts.run_many("expire", calls)
        expired = sum(len(ended) for ended in results)
        HOLDS_EXPIRED.inc(expired)
        return expired

    async def recover_claims(self, product_ids: Iterable[ObjectId], now: int | None = None) -> int:
        """Finish or undo checkouts abandoned mid-way (their process died): a claim older
        than ABANDONED_CLAIM_MS is committed if its order exists in MongoDB, else put back.
        Returns how many were settled."""
        moment = self.clock() if now is None else now
        settled = 0
        for product_id in product_ids:
            keys = ProductKeys(product_id)
            stale = await self.redis.zrangebyscore(keys.claims, "-inf", moment - ABANDONED_CLAIM_MS)
            for raw in stale:
                rid = ReservationId(product_id, ObjectId(text(raw)))
                sale = await self._recorded_sale(rid.hold_id)
                hold = await self.get(rid)
                if sale is not None and hold is not None:
                    await self.commit(rid, hold)
                else:
                    await self._unclaim(rid)
                settled += 1
        return settled

    async def reconcile(self, product_ids: Iterable[ObjectId]) -> int:
        """Rebuild the counters of products missing from Redis from MongoDB. Returns how
        many products were checked."""
        checked = 0
        for product_id in product_ids:
            if not await self.redis.exists(ProductKeys(product_id).stock):
                try:
                    await self.ensure_loaded(product_id)
                except ProductMissing:
                    continue
            checked += 1
        return checked

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        try:
            return await self.scripts.run(name, keys, args)
        except RedisError as exc:
            logger.warning("redis script %s failed: %s", name, exc)
            raise ServiceUnavailable("the stock store (Redis)") from None
