"""Records waiting-room tickets in MongoDB (collection room_tickets) from each product's room
change log, for analytics: who joined, was admitted (and after how long), let the turn
lapse, reserved. At-least-once and idempotent like the persister: entries are read through
a consumer group, written as upserts that only set a step's fields, then acknowledged and
deleted; entries a dead process left pending are claimed after a while."""

import os
import socket
from collections.abc import Iterable
from typing import Any

from bson import ObjectId
from pymongo import UpdateOne
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from models import RoomTicket
from reservations.keys import ProductKeys
from reservations.values import text, to_datetime

GROUP = "room-recorder"
BATCH = 500
STALE_PENDING_MS = 30_000
STEP_FIELDS = ("admitted_at", "wait_ms", "lapsed_at", "reserved_at", "reservation_id")
DUPLICATE_KEY = 11000


def _entries(reply: Any) -> list[Any]:
    """The entries of a one-stream XREADGROUP reply (RESP2: a list, RESP3: a dict)."""
    if not reply:
        return []
    if isinstance(reply, dict):
        return list(next(iter(reply.values())))
    return list(reply[0][1])


def _update(product_id: ObjectId, fields: dict[str, str]) -> UpdateOne:
    at = to_datetime(int(fields["at"]))
    step = fields["e"]
    changes: dict[str, Any] = {}
    if step == "ADMITTED":
        changes = {"admitted_at": at, "wait_ms": int(fields["w"])}
    elif step == "LAPSED":
        changes = {"lapsed_at": at}
    elif step == "RESERVED":
        changes = {"reserved_at": at, "reservation_id": ObjectId(fields["r"])}
    ticket = {
        "product_id": product_id,
        "customer_id": ObjectId(fields["c"]),
        "joined_at": to_datetime(int(fields["j"])),
    }
    # A ticket's first step recorded inserts it with every field (steps can arrive out of
    # order when a stale entry is claimed); later ones set only their own.
    fresh = {field: None for field in STEP_FIELDS if field not in changes}
    update: dict[str, Any] = {"$setOnInsert": fresh}
    if changes:
        update["$set"] = changes
    return UpdateOne(ticket, update, upsert=True)


class RoomRecorder:
    def __init__(
        self,
        redis: Redis,
        database: AsyncDatabase[dict[str, Any]],
        *,
        consumer: str | None = None,
    ) -> None:
        self.redis = redis
        self._tickets = RoomTicket.collection(database)
        self.consumer = consumer or f"{socket.gethostname()}-{os.getpid()}"
        self._groups: set[ObjectId] = set()

    async def run_once(self, product_ids: Iterable[ObjectId]) -> int:
        """Record what is waiting in these products' room logs; returns how many entries.
        Products without a room have no log and cost one read each."""
        done = 0
        for product_id in product_ids:
            done += await self._drain(product_id)
        return done

    async def _ensure_group(self, keys: ProductKeys) -> None:
        if keys.product_id in self._groups:
            return
        try:
            await self.redis.xgroup_create(keys.room_log, GROUP, id="0", mkstream=True)
        except ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
        self._groups.add(keys.product_id)

    async def _write(self, updates: list[UpdateOne]) -> None:
        """In log order. Two processes upserting one new ticket at once (its steps in two
        batches) make one insert fail on the unique index: written again, it updates."""
        for attempt in range(2):
            try:
                await self._tickets.bulk_write(updates, ordered=True)
                return
            except BulkWriteError as exc:
                errors = exc.details.get("writeErrors", [])
                if attempt or not all(e.get("code") == DUPLICATE_KEY for e in errors):
                    raise

    async def _drain(self, product_id: ObjectId) -> int:
        keys = ProductKeys(product_id)
        if keys.product_id not in self._groups and not await self.redis.exists(keys.room_log):
            return 0  # no room here (yet): no group to make
        await self._ensure_group(keys)
        total = 0
        while True:
            try:
                reply = await self.redis.xreadgroup(
                    GROUP, self.consumer, {keys.room_log: ">"}, count=BATCH
                )
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self._groups.discard(product_id)  # the stream was lost with Redis' data
                return total
            entries = _entries(reply)
            if not entries:
                reply = await self.redis.xautoclaim(
                    keys.room_log, GROUP, self.consumer, STALE_PENDING_MS, "0-0", count=BATCH
                )
                entries = list(reply[1])
            if not entries:
                return total
            ids = [entry_id for entry_id, _ in entries]
            updates = [
                _update(product_id, {text(k): text(v) for k, v in fields.items()})
                for _, fields in entries
            ]
            await self._write(updates)
            await self.redis.xack(keys.room_log, GROUP, *ids)
            await self.redis.xdel(keys.room_log, *ids)
            total += len(entries)
