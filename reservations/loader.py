"""Redis loaded from MongoDB: a product's counters and recorded holds when Redis lacks them
(a fresh Redis, or one that lost its data), and its total and sale rules after MongoDB
changed them. MongoDB is the system of record, so everything here can run again."""

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from models import Product
from reservations.errors import ProductMissing
from reservations.ledger import Ledger
from reservations.store import StockStore
from reservations.values import Clock

logger = logging.getLogger("flashsale.reservations")


class StockLoader:
    def __init__(
        self,
        store: StockStore,
        ledger: Ledger,
        database: AsyncDatabase[dict[str, Any]],
        *,
        default_hold_ms: int,
        clock: Clock,
    ) -> None:
        self.store = store
        self.ledger = ledger
        self.default_hold_ms = default_hold_ms
        self.clock = clock
        self._products = Product.collection(database)
        self._loading: dict[ObjectId, asyncio.Future[set[ObjectId]]] = {}

    async def ensure_loaded(self, product_id: ObjectId) -> None:
        """Load the product's counters and recorded holds from MongoDB if Redis lacks them.
        Idempotent and safe to race across processes: the script loads only when the
        product is missing. Within a process, concurrent callers share one load (a stampede
        on a cold product would otherwise read MongoDB once per request). Raises
        ProductMissing."""
        if product_id in await self.ensure_loaded_many([product_id]):
            raise ProductMissing(product_id)

    async def ensure_loaded_many(self, product_ids: Iterable[ObjectId]) -> set[ObjectId]:
        """`ensure_loaded` for several products, those not being loaded already read from
        MongoDB together (one read of products, orders and holds each, not one per
        product). Returns the ones that do not exist."""
        ids = list(dict.fromkeys(product_ids))
        fresh = [product_id for product_id in ids if product_id not in self._loading]
        if fresh:
            batch = asyncio.ensure_future(self._load(fresh))
            for product_id in fresh:
                self._loading[product_id] = batch

            def done(_: object) -> None:
                for product_id in fresh:
                    if self._loading.get(product_id) is batch:
                        del self._loading[product_id]

            batch.add_done_callback(done)
        loads = {self._loading[product_id] for product_id in ids if product_id in self._loading}
        missing: set[ObjectId] = set()
        for load in loads:
            missing |= await asyncio.shield(load)
        return missing & set(ids)

    async def _load(self, product_ids: list[ObjectId]) -> set[ObjectId]:
        """Load these products into Redis; returns those MongoDB does not have."""
        products = {
            product["_id"]: product
            async for product in self._products.find({"_id": {"$in": product_ids}})
        }
        found = list(products)
        # Orders first, then the ACTIVE holds: a checkout committing in between shows as
        # COMPLETED in the second read (one transaction writes both), so it is counted by
        # neither and its commit in Redis counts it; a hold read as ACTIVE whose order the
        # first read saw cannot exist.
        orders = await self.ledger.recorded_orders_of(found)
        active = await self.ledger.active_holds_of(found)

        async def load(product_id: ObjectId) -> None:
            product, sold = products[product_id], {o.hold_id for o in orders[product_id]}
            holds = [hold for hold in active[product_id] if hold.id.hold_id not in sold]
            if await self.store.load(product, self.hold_ms(product), holds, orders[product_id]):
                logger.info(
                    "loaded product %s into Redis (%d active holds)", product_id, len(holds)
                )

        await asyncio.gather(*(load(product_id) for product_id in found))
        return set(product_ids) - set(found)

    async def load_missing(self, product_ids: Iterable[ObjectId]) -> int:
        """Rebuild the counters of products missing from Redis from MongoDB. Returns how
        many products are loaded."""
        ids = list(product_ids)
        absent = [product_id for product_id in ids if not await self.store.loaded(product_id)]
        missing = await self.ensure_loaded_many(absent) if absent else set()
        return len(ids) - len(missing)

    async def sync_rules(self, product: dict[str, Any], *, force: bool = False) -> None:
        """After MongoDB changed a product: copy its total and sale rules to Redis (a newer
        version only, unless forced)."""
        await self.store.set_rules(product, self.hold_ms(product), self.clock(), force=force)

    def hold_ms(self, product: dict[str, Any]) -> int:
        """How long a hold of this product lasts: its own hold_seconds, else the default."""
        seconds = product.get("hold_seconds")
        return int(seconds) * 1000 if seconds else self.default_hold_ms
