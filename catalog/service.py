"""The catalog: products, their stock and sale windows.

Every change is one conditional MongoDB update, so concurrent admins and API processes never
lose an update or push total stock below what is already sold.
"""

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any, NoReturn, Protocol

from bson import ObjectId
from pymongo import ReturnDocument
from pymongo.asynchronous.database import AsyncDatabase

from catalog import validation as rules
from catalog.errors import ProductNotFound, StockBelowCommitted
from catalog.validation import ProductDraft
from core.errors import InvalidInput
from models import Product
from models.common import utcnow
from reservations import ServiceUnavailable

logger = logging.getLogger("flashsale.catalog")

PAGE_MAX = 100
PRODUCT_CACHE_SECONDS = 1.0
PRODUCT_CACHE_SIZE = 10_000

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

    async def create(self, draft: ProductDraft) -> Product:
        """Insert the product, then announce it (best effort: the product stands either way,
        and a storefront that missed the news lists it at its next load)."""
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
        await product.insert(self._database)
        if self.announce is not None:
            await self.announce(product.id)
        return product

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

    async def restock(self, product_id: ObjectId, quantity: int) -> Product:
        """Atomically add `quantity` units to the total stock."""
        rules.check_range("quantity", quantity, 1, rules.STOCK_MAX)
        document = await self._products.find_one_and_update(
            {"_id": product_id, "total_stock": {"$lte": rules.STOCK_MAX - quantity}},
            {"$inc": {"total_stock": quantity, "version": 1}, "$set": {"updated_at": utcnow()}},
            return_document=ReturnDocument.AFTER,
        )
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
