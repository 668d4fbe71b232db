"""The reservation engine: the one object the rest of the code calls. Each state change is
one Lua script in Redis (store.py); checkout is made durable in MongoDB before it answers
(checkout.py, ledger.py); Redis is rebuilt from MongoDB when it lacks a product
(loader.py); reads.py answers the reads. The hot path (reserve, cancel) and expiry are
single scripts and live here.

Invariants it keeps (see docs/invariants.md): sold + reserved <= total stock for every
product, at every instant, across any number of processes; every hold ends exactly once; a
retry with the same idempotency key returns the first result and changes nothing.
"""

from collections.abc import Iterable
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from redis.asyncio import Redis

from core.errors import InvalidInput
from models import ReservationStatus
from reservations.checkout import CheckoutSaga
from reservations.errors import (
    CheckoutInProgress,
    IdempotencyKeyReused,
    LimitPerCustomer,
    NotAdmitted,
    OutOfStock,
    ProductMissing,
    ReservationExpired,
    SaleNotActive,
    ServiceUnavailable,
    not_active,
)
from reservations.ledger import Ledger
from reservations.loader import StockLoader
from reservations.metrics import counted
from reservations.reads import Reads
from reservations.store import StockStore
from reservations.values import (
    Clock,
    Hold,
    RecordedOrder,
    ReservationId,
    Sale,
    StockCounters,
    system_clock,
    to_datetime,
    unguessable_id,
)
from reservations.waiting_room import Draw, Ticket, WaitingRoom
from telemetry import HOLDS_EXPIRED, RESERVATIONS

QUANTITY_MAX = 1_000
IDEMPOTENCY_KEY_MAX = 128
IDEMPOTENCY_TTL_SECONDS = 24 * 3600
EXPIRE_BATCH = 500


class ReservationEngine:
    def __init__(
        self,
        redis: Redis,
        database: AsyncDatabase[dict[str, Any]],
        *,
        default_hold_seconds: int,
        clock: Clock = system_clock,
        draw: Draw | None = None,
    ) -> None:
        self.redis = redis
        self.store = StockStore(redis)
        self.database = database
        self.default_hold_ms = default_hold_seconds * 1000
        self.clock = clock
        self.ledger = Ledger(database, clock)
        self.loader = StockLoader(
            self.store, self.ledger, database, default_hold_ms=self.default_hold_ms, clock=clock
        )
        self.reads = Reads(self.store, self.ledger, self.loader, database)
        self.checkouts = CheckoutSaga(self.store, self.ledger, self.reads, clock)
        self.room = WaitingRoom(self.store, self.loader, clock, draw)

    # -- loading and counters -------------------------------------------------------------

    async def ensure_loaded(self, product_id: ObjectId) -> None:
        """Load the product into Redis from MongoDB if Redis lacks it (see StockLoader)."""
        await self.loader.ensure_loaded(product_id)

    async def load_missing(self, product_ids: Iterable[ObjectId]) -> int:
        """Rebuild the counters of products missing from Redis from MongoDB. Returns how
        many products are loaded."""
        return await self.loader.load_missing(product_ids)

    async def sync_rules(self, product: dict[str, Any], *, force: bool = False) -> None:
        """After MongoDB changed a product: copy its total and sale rules to Redis (a newer
        version only, unless forced)."""
        await self.loader.sync_rules(product, force=force)

    async def lower_total(self, product_id: ObjectId, total: int) -> int | None:
        """Before MongoDB's total stock drops: apply the drop in Redis, refused below what is
        sold or held. Returns None when allowed, else the committed units. A product Redis
        lacks is loaded first: its recorded holds count (they come back with it)."""
        for attempt in range(2):
            outcome = await self.store.lower_total(product_id, total)
            if outcome.kind == "NOT_LOADED" and attempt == 0:
                try:
                    await self.loader.ensure_loaded(product_id)
                except ProductMissing:  # MongoDB's update finds no product either
                    return None
                continue
            break
        return outcome.committed if outcome.kind == "BELOW_COMMITTED" else None

    def hold_seconds(self, product_hold_seconds: int | None) -> int:
        """How long a hold of a product with this `hold_seconds` setting lasts: its own,
        else the default (what the engine gives Redis for the product's holds)."""
        return self.loader.hold_ms({"hold_seconds": product_hold_seconds}) // 1000

    async def recorded_orders(self, product_id: ObjectId) -> list[RecordedOrder]:
        """MongoDB's orders of a product, as the counters need them."""
        return await self.ledger.recorded_orders(product_id)

    async def counters(self, product_ids: Iterable[ObjectId]) -> dict[ObjectId, StockCounters]:
        """Live counters for these products, in one round trip (loading missing ones)."""
        return await self.reads.counters(product_ids)

    async def recorded_reserved(self, product_ids: Iterable[ObjectId]) -> dict[ObjectId, int]:
        """Units held by ACTIVE holds as MongoDB recorded them: the stock figure to show
        while Redis is out of reach (it trails the live one by the persister's delay)."""
        return await self.reads.recorded_reserved(product_ids)

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
        IdempotencyKeyReused. With the product's waiting room on, the customer needs a valid
        admission, which the hold uses up in the same step (else NotAdmitted). Raises
        SaleNotActive, NotAdmitted, LimitPerCustomer, OutOfStock, ProductMissing,
        InvalidInput, ServiceUnavailable."""
        with counted(RESERVATIONS, "RESERVED"):
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
                    await self.loader.ensure_loaded(product_id)
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
                existing = await self.reads.find(ReservationId(product_id, outcome.existing), None)
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
            if outcome.kind == "NOT_ADMITTED":
                raise NotAdmitted(outcome.position or None)
            raise ProductMissing(product_id)

    async def get(self, rid: ReservationId) -> Hold | None:
        """The hold, whoever holds it (an admin's view): see `find`."""
        return await self.reads.find(rid, None)

    async def find(self, rid: ReservationId, customer_id: ObjectId | None) -> Hold | None:
        """The hold if the caller may see it (`customer_id` None: anyone's), else None; see
        Reads.find."""
        return await self.reads.find(rid, customer_id)

    async def cancel(self, rid: ReservationId, customer_id: ObjectId | None) -> Hold:
        """End an ACTIVE hold and return its stock, atomically. `customer_id` None means an
        admin acting on anyone's hold; a customer gets RESERVATION_NOT_FOUND for holds of
        others. A hold past its deadline has expired, whether or not the tick ran. Raises
        ReservationNotFound, ReservationExpired, ReservationNotActive,
        CheckoutInProgress."""
        released = await self.store.release(
            rid, self.clock(), ReservationStatus.CANCELLED, customer_id
        )
        outcome, status = released.kind, released.status
        if outcome == "OK":
            return await self.reads.owned(rid, customer_id)
        if outcome == "CLAIMED":
            raise CheckoutInProgress()
        if outcome == "EXPIRED":
            raise ReservationExpired()
        hold = await self.reads.owned(rid, customer_id)  # NOT_FOUND in Redis: maybe recorded
        raise not_active(status or hold.status)

    # -- checkout ------------------------------------------------------------------------

    async def checkout(self, rid: ReservationId, customer_id: ObjectId | None) -> Sale:
        """Buy a held reservation (payment is mocked). Durable before it answers (the order
        transaction commits in MongoDB first); a retry, or a second checkout of the same
        hold, returns the same order once it is durable, CHECKOUT_IN_PROGRESS before; a
        failure before the transaction commits puts the hold back as it was (see
        CheckoutSaga.checkout). Raises ReservationNotFound, ReservationExpired,
        ReservationNotActive, CheckoutInProgress, OutOfStock, ServiceUnavailable."""
        return await self.checkouts.checkout(rid, customer_id)

    async def commit(self, hold: Hold) -> None:
        """Count a durable sale in Redis. Idempotent: a sale is counted once however often
        and however late this runs."""
        await self.checkouts.commit(hold)

    # -- read models ---------------------------------------------------------------------

    async def customer_holds(
        self, customer_id: ObjectId, status: ReservationStatus | None, limit: int
    ) -> list[Hold]:
        """The customer's holds, newest first, each as it is now (see Reads)."""
        return await self.reads.customer_holds(customer_id, status, limit)

    async def customer_sales(self, customer_id: ObjectId, limit: int) -> list[Sale]:
        """The customer's orders, newest first, in two queries."""
        return await self.reads.customer_sales(customer_id, limit)

    # -- the waiting room (reservations/waiting_room.py) ----------------------------------

    async def join_waiting_room(self, customer_id: ObjectId, product_id: ObjectId) -> Ticket:
        """The customer's ticket in the product's waiting room: see WaitingRoom.join."""
        return await self.room.join(customer_id, product_id)

    async def waiting_room_ticket(
        self, customer_id: ObjectId, product_id: ObjectId
    ) -> Ticket | None:
        """The customer's ticket as it is now (None: not joined)."""
        return await self.room.ticket(customer_id, product_id)

    async def admit(self, product_ids: Iterable[ObjectId], now: int | None = None) -> int:
        """One admission step of every product's waiting room (one atomic script each; safe
        from many processes at once). Returns how many shoppers were admitted."""
        return await self.room.admit(list(product_ids), now)

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
        """Finish or undo checkouts abandoned mid-way (their process died): see
        CheckoutSaga.recover_claims. Returns how many were settled."""
        return await self.checkouts.recover_claims(product_ids, now)
