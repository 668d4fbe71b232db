"""The catalog: products, their stock and sale windows.

Every change is one conditional MongoDB update, so concurrent admins and API processes never
lose an update or push total stock below what is already sold.
"""

import asyncio
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn, Protocol

import pymongo
from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.client_session import AsyncClientSession
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from catalog import validation as rules
from catalog.errors import AdminKeyReused, ProductNotFound, StockBelowCommitted
from catalog.validation import ProductDraft
from core.errors import InvalidInput
from models import AdminRequest, Product
from models.common import utcnow
from reservations import ServiceUnavailable

logger = logging.getLogger("flashsale.catalog")

PAGE_MAX = 100
PRODUCT_CACHE_SECONDS = 1.0
PRODUCT_CACHE_SIZE = 10_000
IDEMPOTENCY_KEY_MAX = 128
# An admin write with an idempotency key: its transaction, retries included.
ADMIN_WRITE_TIMEOUT_SECONDS = 5.0

# Patchable field -> (its public name in errors, document field, validator, nullable).
# Validators raise InvalidInput naming the public field.
_PATCHABLE: dict[str, tuple[str, str, Any, bool]] = {
    "name": ("name", "name", rules.check_name, False),
    "description": ("description", "description", rules.check_description, False),
    "price": ("price", "price_cents", rules.price_to_cents, False),
    "total_stock": (
        "totalStock",
        "total_stock",
        lambda v: rules.check_range("totalStock", v, 0, rules.STOCK_MAX),
        False,
    ),
    "max_per_customer": (
        "maxPerCustomer",
        "max_per_customer",
        lambda v: rules.check_range("maxPerCustomer", v, 1, rules.PER_CUSTOMER_MAX),
        False,
    ),
    "hold_seconds": (
        "holdSeconds",
        "hold_seconds",
        lambda v: rules.check_range(
            "holdSeconds", v, rules.HOLD_SECONDS_MIN, rules.HOLD_SECONDS_MAX
        ),
        True,
    ),
    "sale_starts_at": (
        "saleStartsAt",
        "sale_starts_at",
        lambda v: rules.check_instant("saleStartsAt", v),
        True,
    ),
    "sale_ends_at": (
        "saleEndsAt",
        "sale_ends_at",
        lambda v: rules.check_instant("saleEndsAt", v),
        True,
    ),
    # A WaitingRoomRule, checked when it was made (rules.waiting_room_rule); null: none.
    "waiting_room": ("waitingRoom", "waiting_room", lambda v: v.model_dump(), True),
}


@dataclass(frozen=True)
class ProductPage:
    products: list[Product]
    has_next_page: bool


def on_sale_filter(now: datetime, on_sale: bool) -> dict[str, Any]:
    started = {"$or": [{"sale_starts_at": None}, {"sale_starts_at": {"$lte": now}}]}
    not_ended = {"$or": [{"sale_ends_at": None}, {"sale_ends_at": {"$gt": now}}]}
    if on_sale:
        return {"$and": [started, not_ended]}
    return {"$or": [{"sale_starts_at": {"$gt": now}}, {"sale_ends_at": {"$lte": now}}]}


class StockRules(Protocol):
    """What the catalog needs from the reservation engine to keep Redis in step."""

    async def lower_total(self, product_id: ObjectId, total: int) -> int | None: ...

    async def sync_rules(self, product: dict[str, Any], *, force: bool = False) -> None: ...


Announce = Callable[[ObjectId], Awaitable[object]]
"""Tells live subscribers (every process's storefronts) that this product was created."""


class CatalogService:
    def __init__(
        self,
        database: AsyncDatabase[dict[str, Any]],
        stock: StockRules | None = None,
        announce: Announce | None = None,
    ) -> None:
        self._database = database
        self._products = Product.collection(database)
        self.stock = stock
        self.announce = announce
        self._cache: dict[ObjectId, tuple[float, Product]] = {}
        self._reading: dict[ObjectId, asyncio.Future[Product | None]] = {}

    async def create(self, draft: ProductDraft, idempotency_key: str | None = None) -> Product:
        """Insert the product, then announce it (best effort: the product stands either way,
        and a storefront that missed the news lists it at its next load). With an
        idempotency key the key is recorded with the product, in one transaction: a retry
        (its first answer lost) returns that product and inserts nothing; the key with
        another product's input is AdminKeyReused."""
        product = Product(
            name=draft.name,
            description=draft.description,
            price_cents=draft.price_cents,
            total_stock=draft.total_stock,
            max_per_customer=draft.max_per_customer,
            hold_seconds=draft.hold_seconds,
            sale_starts_at=draft.sale_starts_at,
            sale_ends_at=draft.sale_ends_at,
            waiting_room=draft.waiting_room,
        )
        if idempotency_key is None:
            await product.insert(self._database)
        else:
            request = _request("createProduct", idempotency_key, product.id, _draft_digest(draft))
            products = self._products

            async def insert(session: AsyncClientSession) -> None:
                await products.insert_one(product.to_mongo(), session=session)

            done = await self._once(request, insert)
            if done is not None:
                found = await Product.get(self._database, done.product_id)
                assert found is not None  # written in the request's transaction
                return found
        if self.announce is not None:
            await self.announce(product.id)
        return product

    async def _once(
        self, request: AdminRequest, write: Callable[[AsyncClientSession], Awaitable[object]]
    ) -> AdminRequest | None:
        """Make `write` and record `request` in one transaction (retried on transient
        errors, within ADMIN_WRITE_TIMEOUT_SECONDS). Returns None when this call wrote, or
        the request as first recorded when an earlier call with its key did (the write is
        not made again); AdminKeyReused when that was another request."""
        requests = AdminRequest.collection(self._database)

        async def transaction(session: AsyncClientSession) -> None:
            await requests.insert_one(request.to_mongo(), session=session)
            await write(session)

        try:
            with pymongo.timeout(ADMIN_WRITE_TIMEOUT_SECONDS):
                async with self._database.client.start_session() as session:
                    await session.with_transaction(transaction)
            return None
        except DuplicateKeyError:
            first = await AdminRequest.find_one(self._database, {"_id": request.id})
            if first is None:  # the duplicate was another index's
                raise
            if first.fingerprint != request.fingerprint:
                raise AdminKeyReused(request.id.split(":", 1)[0]) from None
            return first

    async def get(self, product_id: ObjectId) -> Product | None:
        """The product, from a cache of at most PRODUCT_CACHE_SECONDS (stock counters are
        never cached: they come live from Redis). Changes made here invalidate it at once;
        changes made by another process show within that time. One read per product at a
        time: callers that miss while it is out wait for its answer (as the cache expires
        under a stampede of stock reads, each used to read the product itself)."""
        now = time.monotonic()
        cached = self._cache.get(product_id)
        if cached is not None and cached[0] > now:
            return cached[1]
        reading = self._reading.get(product_id)
        if reading is None:
            reading = asyncio.ensure_future(self._read(product_id, now))
            self._reading[product_id] = reading
            reading.add_done_callback(lambda done: self._read_ended(product_id, done))
        # Shielded: a caller that goes away does not cancel the read the others wait for.
        return await asyncio.shield(reading)

    async def _read(self, product_id: ObjectId, now: float) -> Product | None:
        product = await Product.get(self._database, product_id)
        # Not when a change made here invalidated the product while this read was out:
        # what it read may be from before the change.
        if product is not None and self._reading.get(product_id) is asyncio.current_task():
            self._remember(product_id, product, now)
        return product

    def _read_ended(self, product_id: ObjectId, read: "asyncio.Future[Product | None]") -> None:
        if self._reading.get(product_id) is read:
            del self._reading[product_id]
        if not read.cancelled():
            read.exception()  # retrieved: every waiter may have gone away

    async def get_many(self, product_ids: Iterable[ObjectId]) -> dict[ObjectId, Product]:
        """Those of these products that exist, by id, read in one query (those `get` has
        cached within PRODUCT_CACHE_SECONDS are not read again, and the rest are cached)."""
        now = time.monotonic()
        found: dict[ObjectId, Product] = {}
        missing = []
        for product_id in dict.fromkeys(product_ids):
            cached = self._cache.get(product_id)
            if cached is not None and cached[0] > now:
                found[product_id] = cached[1]
            else:
                missing.append(product_id)
        if missing:
            async for document in self._products.find({"_id": {"$in": missing}}):
                product = Product.from_mongo(document)
                found[product.id] = product
                self._remember(product.id, product, now)
        return found

    def _remember(self, product_id: ObjectId, product: Product, now: float) -> None:
        if len(self._cache) >= PRODUCT_CACHE_SIZE:
            self._cache.clear()
        self._cache[product_id] = (now + PRODUCT_CACHE_SECONDS, product)

    async def page(
        self,
        *,
        first: int,
        after: ObjectId | None = None,
        on_sale: bool | None = None,
        now: datetime | None = None,
    ) -> ProductPage:
        """Products in creation order (by id), `first` at a time after the cursor `after`."""
        rules.check_range("first", first, 1, PAGE_MAX)
        query = self.filter(on_sale=on_sale, now=now)
        if after is not None:
            query = {"$and": [query, {"_id": {"$gt": after}}]}
        cursor = self._products.find(query).sort("_id").limit(first + 1)
        found = [Product.from_mongo(document) async for document in cursor]
        return ProductPage(products=found[:first], has_next_page=len(found) > first)

    async def count(self, *, on_sale: bool | None = None, now: datetime | None = None) -> int:
        return await self._products.count_documents(self.filter(on_sale=on_sale, now=now))

    @staticmethod
    def filter(*, on_sale: bool | None, now: datetime | None) -> dict[str, Any]:
        return {} if on_sale is None else on_sale_filter(now or utcnow(), on_sale)

    async def update(self, product_id: ObjectId, changes: dict[str, Any]) -> Product:
        """Apply the given fields (absent means unchanged, None clears a nullable field) in
        one conditional update. Total stock never drops below what is
        sold, and the sale window stays ordered, even against concurrent changes."""
        updates: dict[str, Any] = {}
        for field, value in changes.items():
            public_name, document_field, check, nullable = _PATCHABLE[field]
            if value is None and not nullable:
                raise InvalidInput(public_name, "must not be null")
            updates[document_field] = None if value is None else check(value)
        guards: list[dict[str, Any]] = [{"_id": product_id}]
        if "total_stock" in updates:
            guards.append({"sold": {"$lte": updates["total_stock"]}})
        guards.extend(self._window_guards(updates))
        if self.stock is not None and "total_stock" in updates:
            # Holds live in Redis: a drop in total stock is checked (and applied) there first.
            committed = await self.stock.lower_total(product_id, updates["total_stock"])
            if committed is not None:
                raise StockBelowCommitted(updates["total_stock"], committed)
        updates["updated_at"] = utcnow()
        document = await self._products.find_one_and_update(
            {"$and": guards},
            {"$set": updates, "$inc": {"version": 1}},
            return_document=ReturnDocument.AFTER,
        )
        if document is None:
            if self.stock is not None and "total_stock" in updates:
                # Refused after Redis took the drop: put Redis back to what MongoDB holds.
                current = await self._products.find_one({"_id": product_id})
                if current is not None:
                    await self.stock.sync_rules(current, force=True)
            await self._explain_refusal(product_id, updates)
        await self._synced(document)
        return Product.from_mongo(document)

    async def _synced(self, document: dict[str, Any]) -> None:
        """After MongoDB (the system of record) took a change: copy it to Redis. If Redis is
        out of reach the change still stands, and is reported done: Redis takes it when it
        loads the product, or at the next reconciliation (the product's version is newer)."""
        self._cache.pop(document["_id"], None)
        self._reading.pop(document["_id"], None)
        if self.stock is not None:
            try:
                await self.stock.sync_rules(document)
            except ServiceUnavailable:
                logger.warning(
                    "product %s changed in MongoDB; Redis takes it when it is back",
                    document["_id"],
                )

    async def restock(
        self, product_id: ObjectId, quantity: int, idempotency_key: str | None = None
    ) -> Product:
        """Atomically add `quantity` units to the total stock. With an idempotency key, a
        retry (its first answer lost) adds nothing again and answers the product as it is;
        the key with another product or quantity is AdminKeyReused."""
        rules.check_range("quantity", quantity, 1, rules.STOCK_MAX)
        match = {"_id": product_id, "total_stock": {"$lte": rules.STOCK_MAX - quantity}}
        change = {
            "$inc": {"total_stock": quantity, "version": 1},
            "$set": {"updated_at": utcnow()},
        }
        document: dict[str, Any] | None = None
        if idempotency_key is None:
            document = await self._products.find_one_and_update(
                match, change, return_document=ReturnDocument.AFTER
            )
        else:
            products = self._products
            request = _request("restock", idempotency_key, product_id, f"{product_id}:{quantity}")

            async def add(session: AsyncClientSession) -> None:
                nonlocal document
                document = await products.find_one_and_update(
                    match, change, return_document=ReturnDocument.AFTER, session=session
                )
                if document is None:
                    raise _Refused  # aborts: the key stays unused

            try:
                done = await self._once(request, add)
            except _Refused:
                document = None
            else:
                if done is not None:
                    found = await Product.get(self._database, product_id)
                    if found is None:
                        raise ProductNotFound(product_id)
                    return found
        if document is None:
            if await Product.get(self._database, product_id) is None:
                raise ProductNotFound(product_id)
            raise InvalidInput("quantity", f"total stock would exceed {rules.STOCK_MAX}")
        await self._synced(document)
        return Product.from_mongo(document)

    @staticmethod
    def _window_guards(updates: dict[str, Any]) -> list[dict[str, Any]]:
        starts, ends = updates.get("sale_starts_at"), updates.get("sale_ends_at")
        if "sale_starts_at" in updates and "sale_ends_at" in updates:
            rules.check_window(starts, ends)
            return []
        if starts is not None:  # the stored end must stay after the new start
            return [{"$or": [{"sale_ends_at": None}, {"sale_ends_at": {"$gt": starts}}]}]
        if ends is not None:
            return [{"$or": [{"sale_starts_at": None}, {"sale_starts_at": {"$lt": ends}}]}]
        return []

    async def _explain_refusal(self, product_id: ObjectId, updates: dict[str, Any]) -> NoReturn:
        current = await Product.get(self._database, product_id)
        if current is None:
            raise ProductNotFound(product_id)
        if "total_stock" in updates and updates["total_stock"] < current.sold:
            raise StockBelowCommitted(updates["total_stock"], current.sold)
        field = "saleStartsAt" if "sale_starts_at" in updates else "saleEndsAt"
        raise InvalidInput(field, "the sale must end after it starts")


def price_of(product: Product) -> Decimal:
    return rules.cents_to_price(product.price_cents)


class _Refused(Exception):
    """A conditional write matched nothing: its transaction is aborted."""


def _request(operation: str, key: str, product_id: ObjectId, asked: str) -> AdminRequest:
    """The record of `operation` made with `key` on `product_id`; `asked` says what was
    asked, so that the key with another request is told apart."""
    if not 1 <= len(key) <= IDEMPOTENCY_KEY_MAX:
        raise InvalidInput("idempotencyKey", f"must be 1 to {IDEMPOTENCY_KEY_MAX} characters long")
    digest = hashlib.sha256(asked.encode()).hexdigest()
    return AdminRequest(id=f"{operation}:{key}", product_id=product_id, fingerprint=digest)


def _draft_digest(draft: ProductDraft) -> str:
    """The product asked for, as a canonical string."""
    fields = {
        "name": draft.name,
        "description": draft.description,
        "price_cents": draft.price_cents,
        "total_stock": draft.total_stock,
        "max_per_customer": draft.max_per_customer,
        "hold_seconds": draft.hold_seconds,
        "sale_starts_at": draft.sale_starts_at.isoformat() if draft.sale_starts_at else None,
        "sale_ends_at": draft.sale_ends_at.isoformat() if draft.sale_ends_at else None,
        "waiting_room": draft.waiting_room.model_dump() if draft.waiting_room else None,
    }
    return json.dumps(fields, sort_keys=True)
