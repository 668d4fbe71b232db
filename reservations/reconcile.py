"""Repairs drift between Redis and MongoDB, with MongoDB as the system of record. Safe to run
against live traffic and from many processes at once: every step is atomic in Redis or
idempotent (counting a durable sale, recording a hold), and the reads are ordered so that
an operation in flight is never mistaken for drift. `flashsale reconcile` runs it on demand
(`--dry-run` only reports); the background loops run it every RECONCILE_SECONDS.

Per product:
1. missing from Redis: loaded from MongoDB;
2. counters recounted from Redis's own records (holds, sold record, customers);
3. sales MongoDB has but Redis has not counted: counted; sales Redis counted that MongoDB
   does not have (it lost an acknowledged order): dropped, and reported loudly;
4. abandoned checkouts settled (the recovery sweep);
5. holds whose state MongoDB has not recorded: recorded; ACTIVE records that Redis does not
   know: recorded as EXPIRED (Redis no longer counts their units).
"""

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from bson import ObjectId

from models import Product, Reservation, ReservationStatus
from reservations.checkout import ABANDONED_CLAIM_MS
from reservations.errors import ProductMissing
from reservations.service import ReservationEngine
from reservations.values import to_datetime

logger = logging.getLogger("flashsale.reconcile")

RECONCILE_SECONDS = 60.0


@dataclass
class ProductRepair:
    product_id: ObjectId
    loaded: bool = False
    counters: dict[str, Any] = field(default_factory=dict)
    counted: list[str] = field(default_factory=list)
    unsold: list[str] = field(default_factory=list)
    claims: int = 0
    rules: tuple[int | None, int] | None = None  # (Redis's version, MongoDB's) when behind
    recorded: int = 0
    ended: int = 0

    def findings(self) -> list[str]:
        """What was (or, in a dry run, would be) repaired, one line each."""
        found = []
        if self.loaded:
            found.append("missing from Redis: loaded from MongoDB")
        if self.rules:
            found.append(
                f"total and rules of version {self.rules[1]} copied to Redis (it had "
                f"version {self.rules[0]}: a change made while Redis was out of reach)"
            )
        sold, reserved = self.counters.get("sold", {}), self.counters.get("reserved", {})
        if sold.get("was") != sold.get("now"):
            found.append(f"Redis sold {sold.get('was')} recounted as {sold.get('now')}")
        if reserved.get("was") != reserved.get("now"):
            found.append(f"Redis reserved {reserved.get('was')} recounted as {reserved.get('now')}")
        if self.counters.get("customers"):
            found.append(f"{self.counters['customers']} customers' unit counts recounted")
        if self.counters.get("requeued"):
            found.append(f"{self.counters['requeued']} holds put back in the expiry index")
        if self.counters.get("backfilled"):
            found.append("sold record built from MongoDB's orders (loaded by an older version)")
        if self.counted:
            found.append(f"{len(self.counted)} sales in MongoDB counted in Redis")
        if self.unsold:
            found.append(
                f"{len(self.unsold)} sales counted in Redis have NO ORDER in MongoDB "
                f"(lost by MongoDB): dropped: {', '.join(self.unsold)}"
            )
        if self.claims:
            found.append(f"{self.claims} abandoned checkouts settled")
        if self.recorded:
            found.append(f"{self.recorded} holds recorded in MongoDB")
        if self.ended:
            found.append(f"{self.ended} ACTIVE records unknown to Redis recorded as EXPIRED")
        return found


class Reconciler:
    def __init__(self, engine: ReservationEngine) -> None:
        self.engine = engine

    async def run(
        self, product_ids: Iterable[ObjectId], *, dry_run: bool = False
    ) -> list[ProductRepair]:
        repairs = []
        for product_id in product_ids:
            try:
                repair = await self._product(product_id, dry_run=dry_run)
            except ProductMissing:
                continue
            if repair.findings():
                logger.warning(
                    "product %s %s: %s",
                    product_id,
                    "needs repair" if dry_run else "repaired",
                    "; ".join(repair.findings()),
                )
            repairs.append(repair)
        return repairs

    async def _product(self, product_id: ObjectId, *, dry_run: bool) -> ProductRepair:
        engine, store = self.engine, self.engine.store
        repair = ProductRepair(product_id)
        if not await store.loaded(product_id):
            repair.loaded = True
            if dry_run:
                return repair
            await engine.ensure_loaded(product_id)
        await self._sync_rules(repair, dry_run=dry_run)
        orders = await engine.recorded_orders(product_id)
        repair.counters = await store.repair(product_id, unsell=[], orders=orders, dry_run=dry_run)
        if not (dry_run and repair.counters.get("backfilled")):
            await self._align_sales(repair, dry_run=dry_run)
        if dry_run:
            stale = await store.stale_claims(product_id, engine.clock() - ABANDONED_CLAIM_MS)
            repair.claims = len(stale)
        else:
            repair.claims = await engine.recover_claims([product_id])
        await self._record_holds(repair, dry_run=dry_run)
        return repair

    async def _sync_rules(self, repair: ProductRepair, *, dry_run: bool) -> None:
        """A product change MongoDB took while Redis was out of reach (restock, new rules)."""
        engine = self.engine
        product = await Product.collection(engine.database).find_one({"_id": repair.product_id})
        if product is None:
            raise ProductMissing(repair.product_id)
        held = await engine.store.rules_version(repair.product_id)
        if held is not None and held >= product.get("version", 0):
            return
        repair.rules = (held, product.get("version", 0))
        if not dry_run:
            await engine.sync_rules(product)

    async def _align_sales(self, repair: ProductRepair, *, dry_run: bool) -> None:
        """Redis's sold record against MongoDB's orders. Redis is read first: a sale Redis
        counted was durable before, so it shows in the later read unless MongoDB lost it."""
        engine, store = self.engine, self.engine.store
        counted = await store.sold_record(repair.product_id)
        orders = {
            str(order.hold_id): order for order in await engine.recorded_orders(repair.product_id)
        }
        repair.unsold = sorted(set(counted) - set(orders))
        repair.counted = sorted(set(orders) - set(counted))
        if dry_run:
            return
        for hold_id in repair.counted:  # in flight, or missed: counting is idempotent
            sale = await engine.ledger.recorded_sale(ObjectId(hold_id))
            if sale is not None:
                await engine.commit(sale.hold)
        if repair.unsold:
            logger.error(
                "product %s: sales counted in Redis without an order in MongoDB: %s",
                repair.product_id,
                repair.unsold,
            )
            after = await store.repair(
                repair.product_id, unsell=repair.unsold, orders=[], dry_run=False
            )
            repair.counters["sold"]["now"] = after["sold"]["now"]

    async def _record_holds(self, repair: ProductRepair, *, dry_run: bool) -> None:
        """Holds whose state MongoDB lacks are recorded (as the persister would: idempotent).
        ACTIVE records that Redis does not know are recorded as EXPIRED. MongoDB's ACTIVE
        records are read before Redis's holds, so a hold made meanwhile is never taken for
        one Redis lost."""
        product_id = repair.product_id
        reservations = Reservation.collection(self.engine.database)
        active = await self.engine.ledger.active_holds(product_id)
        live = {hold.id.hold_id: hold for hold in await self.engine.store.product_holds(product_id)}
        statuses = {
            document["_id"]: document["status"]
            async for document in reservations.find({"_id": {"$in": list(live)}}, {"status": 1})
        }
        behind = [
            hold
            for hold_id, hold in live.items()
            if statuses.get(hold_id, ReservationStatus.ACTIVE.value)
            == ReservationStatus.ACTIVE.value
            and (hold_id not in statuses or hold.status is not ReservationStatus.ACTIVE)
        ]
        ended_at = to_datetime(self.engine.clock())
        unknown = [
            replace(hold, status=ReservationStatus.EXPIRED, ended_at=ended_at)
            for hold in active
            if hold.id.hold_id not in live
        ]
        repair.recorded, repair.ended = len(behind), len(unknown)
        if not dry_run and (behind or unknown):
            await self.engine.ledger.record_holds(product_id, behind + unknown)
