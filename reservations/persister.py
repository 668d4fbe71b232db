"""Records every hold's state in MongoDB from the per-product change logs (Redis streams).

At-least-once and idempotent: entries are read through a consumer group, recorded by the
ledger (one transaction per batch, whose filters keep terminal states final and which also
moves the daily funnel rollup to match), then acknowledged. Entries left pending by
a dead process are claimed by another after a while. Ended holds are then dropped from Redis.
"""

import logging
import os
import socket
import time
from collections.abc import Iterable
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from core.outages import mongodb_outage
from models import ReservationStatus
from reservations.codec import hold_from_change
from reservations.keys import ProductKeys
from reservations.ledger import Ledger
from reservations.store import StockStore
from reservations.values import Hold, text
from telemetry import PERSISTED, PERSISTER_LAG, PERSISTER_POISONED

logger = logging.getLogger("flashsale.persister")

GROUP = "persister"
BATCH = 500
STALE_PENDING_MS = 30_000


def _entries(reply: Any) -> list[Any]:
    """The entries of a one-stream XREADGROUP reply (RESP2: a list, RESP3: a dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(next(iter(reply.values())))
    return list(reply[0][1])


class ChangeLogPersister:
    def __init__(
        self,
        redis: Redis,
        database: AsyncDatabase[dict[str, Any]],
        *,
        consumer: str | None = None,
    ) -> None:
        self.redis = redis
        self.store = StockStore(redis)
        self.ledger = Ledger(database)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._groups: set[ObjectId] = set()

    async def run_once(self, product_ids: Iterable[ObjectId]) -> int:
        """Persist what is waiting in these products' logs; returns how many entries."""
        done = 0
        oldest: list[int] = []  # when the oldest entry of each drained log was written, ms
        for product_id in product_ids:
            count, written_ms = await self._drain(product_id)
            done += count
            if written_ms is not None:
                oldest.append(written_ms)
        lag = max(0.0, time.time() - min(oldest) / 1000) if oldest else 0.0
        PERSISTER_LAG.set(lag)
        PERSISTED.inc(done)
        return done

    async def _ensure_group(self, keys: ProductKeys) -> None:
        if keys.product_id in self._groups:
            return
        try:
            await self.redis.xgroup_create(keys.log, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(keys.product_id)

    async def _drain(self, product_id: ObjectId) -> tuple[int, int | None]:
        """Persist this product's waiting entries: how many, and when the oldest was
        written (ms; None if there were none)."""
        keys = ProductKeys(product_id)
        await self._ensure_group(keys)
        total = 0
        oldest: int | None = None
        while True:
            try:
                reply = await self.redis.xreadgroup(
                    GROUP, self.consumer, {keys.log: ">"}, count=BATCH
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._groups.discard(product_id)  # the stream was lost with Redis' data
                await self._ensure_group(keys)
                continue
            entries = _entries(reply)
            if not entries:
                # Entries a dead process read but never acknowledged.
                reply = await self.redis.xautoclaim(
                    keys.log, GROUP, self.consumer, STALE_PENDING_MS, "0-0", count=BATCH
                )
                entries = list(reply[1])
            if not entries:
                return total, oldest
            written_ms = int(text(entries[0][0]).split("-")[0])  # a batch's first is its oldest
            oldest = written_ms if oldest is None else min(oldest, written_ms)
            await self._persist(keys, entries)
            total += len(entries)

    async def _persist(self, keys: ProductKeys, entries: list[Any]) -> None:
        """Record a batch in one transaction. If the batch is refused for what is in it
        (not for an outage), each entry goes alone, so one bad entry (logged, counted,
        skipped) never holds back the others."""
        holds: list[tuple[Any, Hold]] = []
        for entry_id, raw in entries:
            change = {text(k): text(v) for k, v in raw.items()}
            try:
                holds.append((entry_id, hold_from_change(keys.product_id, change)))
            except (KeyError, ValueError, TypeError, InvalidId) as exc:
                self._poisoned(keys, entry_id, change, exc)
        try:
            await self.ledger.record_holds(keys.product_id, [hold for _, hold in holds])
        except PyMongoError as exc:
            if mongodb_outage(exc):
                raise
            for entry_id, hold in holds:
                try:
                    await self.ledger.record_holds(keys.product_id, [hold])
                except PyMongoError as single:
                    if mongodb_outage(single):
                        raise
                    self._poisoned(keys, entry_id, hold, single)
        await self.redis.xack(keys.log, GROUP, *[entry_id for entry_id, _ in entries])
        ended = [
            str(hold.id.hold_id) for _, hold in holds if hold.status is not ReservationStatus.ACTIVE
        ]
        if ended:
            await self.store.forget(keys.product_id, ended)
        await self._trim(keys)

    @staticmethod
    def _poisoned(keys: ProductKeys, entry_id: Any, what: object, error: Exception) -> None:
        PERSISTER_POISONED.inc()
        logger.error(
            "change-log entry %s of product %s not recorded, skipped: %r (%s)",
            text(entry_id),
            keys.product_id,
            what,
            error,
        )

    async def backlog(self, product_ids: Iterable[ObjectId]) -> int:
        """How many entries of these products' logs no persister has recorded yet: those
        not yet read, and those read but not acknowledged. 0 means every state a hold
        reached in Redis so far is in MongoDB (what "at rest" means for the audit)."""
        waiting = 0
        for product_id in product_ids:
            log = ProductKeys(product_id).log
            if not await self.redis.exists(log):
                continue
            groups = {text(g["name"]): g for g in await self.redis.xinfo_groups(log)}
            group = groups.get(GROUP)
            if group is None:  # no persister has read this log yet
                waiting += await self.redis.xlen(log)
                continue
            unread = await self.redis.xrange(log, min=f"({text(group['last-delivered-id'])}")
            waiting += len(unread or []) + int(group["pending"])
        return waiting

    async def _trim(self, keys: ProductKeys) -> None:
        """Drop log entries every consumer has acknowledged."""
        pending = await self.redis.xpending(keys.log, GROUP)
        if pending["pending"]:
            oldest = text(pending["min"])
        else:
            groups = await self.redis.xinfo_groups(keys.log)
            oldest = next(text(g["last-delivered-id"]) for g in groups if text(g["name"]) == GROUP)
            millis, sequence = oldest.split("-")
            oldest = f"{millis}-{int(sequence) + 1}"
        await self.redis.xtrim(keys.log, minid=oldest, approximate=False)
