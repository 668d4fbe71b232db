"""Checkout, the saga that makes a sale durable before it answers: claim the hold in Redis
(one checkout of a hold at a time; it can no longer expire), record the sale in MongoDB
(ledger.py: one transaction, shared by the checkouts of the product waiting in this process
then), count it in Redis (commit). A failure before the transaction commits puts the hold
back (unclaim); an unknown outcome leaves it claimed, and the recovery sweep settles
claims older than ABANDONED_CLAIM_MS from MongoDB. Every step is idempotent.
"""

import asyncio
import contextlib
import logging
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field

from bson import ObjectId
from pymongo.errors import PyMongoError

from core.outages import MONGODB
from models import ReservationStatus
from reservations.errors import (
    CheckoutInProgress,
    OutOfStock,
    ReservationExpired,
    ServiceUnavailable,
    not_active,
)
from reservations.ledger import Ledger
from reservations.metrics import counted
from reservations.reads import Reads
from reservations.store import StockStore
from reservations.values import Clock, Hold, ReservationId, Sale
from telemetry import CHECKOUTS

logger = logging.getLogger("flashsale.reservations")

# Group commit. Checkouts of one product all write its document, so two of its order
# transactions at once only conflict and retry inside the database. With one transaction
# per checkout, one at a time, a burst queued for its length times one transaction (8 round
# trips and an fsync: ~40 ms on a busy 2-core machine, so the 200th of 200 at once waited
# 8 s, and past 15 s answered SERVICE_UNAVAILABLE). Instead, per product and process, the
# next transaction takes every hold waiting (up to CHECKOUT_BATCH_MAX): 200 at once cost
# about five transactions. A hold waits at most CHECKOUT_QUEUE_SECONDS for its transaction
# to start (claimed: it cannot expire), then at most CHECKOUT_TIMEOUT_SECONDS (ledger.py)
# for it to end, retries included; 50 holds measured 0.1 to 0.25 s (0.5 s with a
# write-conflict retry).
CHECKOUT_QUEUE_SECONDS = 15.0
CHECKOUT_BATCH_MAX = 50
# Order transactions at once per process, over all products.
CHECKOUT_TRANSACTIONS = 4
# A claim older than this is abandoned (its process died mid-checkout). Well above
# CHECKOUT_QUEUE_SECONDS + CHECKOUT_TIMEOUT_SECONDS, so a live checkout has always given up
# before it is swept.
ABANDONED_CLAIM_MS = 30_000


@dataclass(eq=False)
class _Queued:
    """A claimed hold waiting for its product's next order transaction."""

    hold: Hold
    taken: asyncio.Event = field(default_factory=asyncio.Event)
    outcome: asyncio.Future[Sale] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class CheckoutSaga:
    def __init__(self, store: StockStore, ledger: Ledger, reads: Reads, clock: Clock) -> None:
        self.store = store
        self.ledger = ledger
        self.reads = reads
        self.clock = clock
        self._transactions = asyncio.Semaphore(CHECKOUT_TRANSACTIONS)
        self._checkout_queues: dict[ObjectId, list[_Queued]] = {}
        self._checkout_drainers: dict[ObjectId, asyncio.Task[None]] = {}

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
        with counted(CHECKOUTS, "COMPLETED"):
            token = secrets.token_hex(8)
            try:
                claim = await self.store.claim(rid, self.clock(), customer_id, token)
            except ServiceUnavailable:
                # Redis out of reach: a hold already bought is still answered, by its order.
                sale = await self.ledger.recorded_sale(rid.hold_id)
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
            sale = await self.ledger.recorded_sale(rid.hold_id)
            if sale is None:
                raise CheckoutInProgress()
            await self.commit(sale.hold)
            return sale
        hold = await self.reads.owned(rid, customer_id)
        if hold.status is ReservationStatus.COMPLETED:
            sale = await self.ledger.recorded_sale(rid.hold_id)
            if sale is not None:
                await self.commit(sale.hold)
                return sale
        raise not_active(status or hold.status)

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
                outcomes = [await self.ledger.record_sale(batch[0].hold)]
            else:
                outcomes = await self.ledger.record_sales([queued.hold for queued in batch])
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

    async def commit(self, hold: Hold) -> None:
        """Count a durable sale in Redis. Idempotent: a sale is counted once however often
        and however late this runs."""
        outcome = await self.store.commit(hold, self.clock())
        if outcome in ("ABSORBED", "LATE"):
            logger.warning(
                "sale of %s counted in Redis after the hold was lost (%s)", hold.id, outcome
            )

    async def recover_claims(self, product_ids: Iterable[ObjectId], now: int | None = None) -> int:
        """Finish or undo checkouts abandoned mid-way (their process died): a claim older
        than ABANDONED_CLAIM_MS is committed if its order exists in MongoDB, else put back.
        Returns how many were settled."""
        moment = self.clock() if now is None else now
        settled = 0
        for product_id in product_ids:
            for stale in await self.store.stale_claims(product_id, moment - ABANDONED_CLAIM_MS):
                sale = await self.ledger.recorded_sale(stale.rid.hold_id)
                if sale is not None:
                    await self.commit(sale.hold)
                else:
                    await self.store.unclaim(stale.rid, stale.token)
                settled += 1
        return settled
