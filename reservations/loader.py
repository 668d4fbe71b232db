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
        self._loading: dict[ObjectId, asyncio.Future[None]] = {}

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
        orders = await self.ledger.recorded_orders(product_id)
        sold = {order.hold_id for order in orders}
        active = [
            hold
            for hold in await self.ledger.active_holds(product_id)
            if hold.id.hold_id not in sold
        ]
        if await self.store.load(product, self.hold_ms(product), active, orders):
            logger.info("loaded product %s into Redis (%d active holds)", product_id, len(active))

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

    async def sync_rules(self, product: dict[str, Any], *, force: bool = False) -> None:
        """After MongoDB changed a product: copy its total and sale rules to Redis (a newer
        version only, unless forced)."""
        await self.store.set_rules(product, self.hold_ms(product), self.clock(), force=force)

    def hold_ms(self, product: dict[str, Any]) -> int:
        """How long a hold of this product lasts: its own hold_seconds, else the default."""
        seconds = product.get("hold_seconds")
        return int(seconds) * 1000 if seconds else self.default_hold_ms
