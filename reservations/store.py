"""The engine's Redis boundary: one typed method per Lua script, which builds the script's
keys and arguments and decodes its reply right here. Nobody else knows a reply's shape.
Redis out of reach leaves as ServiceUnavailable; any other Redis error (a script's bug) is
raised as it is."""

import json
import logging
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, Literal, cast

from bson import ObjectId
from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.outages import REDIS, redis_outage
from models import ReservationStatus
from reservations.codec import (
    claim_token,
    claimed_hold,
    hold_from_redis,
    recorded_hold,
    recorded_order,
    room_rules,
    sold_quantity,
)
from reservations.errors import ServiceUnavailable
from reservations.keys import ProductKeys
from reservations.scripts import Scripts
from reservations.values import Hold, RecordedOrder, ReservationId, StockCounters, text, to_ms

logger = logging.getLogger("flashsale.reservations")


ReserveKind = Literal[
    "OK",
    "EXISTING",
    "NOT_LOADED",
    "SALE_NOT_ACTIVE",
    "LIMIT_PER_CUSTOMER",
    "OUT_OF_STOCK",
    "NOT_ADMITTED",
]
ClaimKind = Literal["OK", "IN_PROGRESS", "NOT_FOUND", "NOT_ACTIVE", "EXPIRED"]
ReleaseKind = Literal["OK", "NOT_FOUND", "NOT_ACTIVE", "CLAIMED", "EXPIRED"]
CommitKind = Literal["OK", "ALREADY", "NOT_LOADED", "ABSORBED", "LATE"]
SetRulesKind = Literal["OK", "NOT_LOADED", "STALE", "BELOW_COMMITTED"]
LowerTotalKind = Literal["OK", "NOT_LOADED", "BELOW_COMMITTED"]


@dataclass(frozen=True)
class ReserveOutcome:
    """What reserve.lua decided, with the figures that go with it."""

    kind: ReserveKind
    expires_ms: int = 0
    available: int = 0
    existing: ObjectId | None = None
    limit: int = 0
    already: int = 0
    position: int = 0  # NOT_ADMITTED: the place in the waiting room's queue (0: none)


@dataclass(frozen=True)
class ClaimOutcome:
    """What claim.lua decided: OK comes with the hold, NOT_ACTIVE with its status."""

    kind: ClaimKind
    hold: Hold | None = None
    status: str | None = None


@dataclass(frozen=True)
class ReleaseOutcome:
    """What release.lua decided: OK and NOT_ACTIVE come with the hold's status."""

    kind: ReleaseKind
    status: str | None = None


@dataclass(frozen=True)
class LowerTotalOutcome:
    kind: LowerTotalKind
    committed: int = 0


@dataclass(frozen=True)
class StaleClaim:
    rid: ReservationId
    token: str


class StockStore:
    def __init__(self, redis: Redis) -> None:
        self.redis = redis
        self._scripts = Scripts(redis)

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._call(self._scripts.run(name, keys, args), f"script {name}")

    async def run_script(self, name: str, keys: list[str], args: list[Any]) -> Any:
        """For the engine's other Redis boundary, the waiting room's: its scripts' replies,
        with this store's outage handling."""
        return await self._run(name, keys, args)

    async def run_script_many(self, name: str, calls: list[tuple[list[str], list[Any]]]) -> Any:
        """`run_script` once per (keys, args), in one round trip where the client can."""
        return await self._call(self._scripts.run_many(name, calls), f"script {name}")

    async def _call(self, command: Awaitable[Any], what: str = "read") -> Any:
        """The command's reply; Redis out of reach raised as ServiceUnavailable."""
        try:
            return await command
        except RedisError as exc:
            if not redis_outage(exc):
                raise
            logger.warning("redis %s failed: %s", what, exc)
            raise ServiceUnavailable(REDIS) from None

    # -- the hot path --------------------------------------------------------------------

    async def reserve(
        self,
        rid: ReservationId,
        customer_id: ObjectId,
        quantity: int,
        now: int,
        idempotency_key: str | None,
        idempotency_ttl_seconds: int,
    ) -> ReserveOutcome:
        keys = ProductKeys(rid.product_id)
        reply = await self._run(
            "reserve",
            [
                keys.stock,
                keys.holds,
                keys.expiry,
                keys.customers,
                keys.idempotency(customer_id, idempotency_key or "-"),
                keys.log,
                keys.room_tickets,
                keys.room_admitted,
                keys.room_queue,
                keys.room_log,
            ],
            [
                str(rid.hold_id),
                str(customer_id),
                quantity,
                now,
                idempotency_key or "",
                keys.events,
                idempotency_ttl_seconds,
            ],
        )
        kind = cast(ReserveKind, text(reply[0]))
        if kind == "OK":
            return ReserveOutcome(kind, expires_ms=int(reply[2]), available=int(reply[3]))
        if kind == "EXISTING":
            return ReserveOutcome(kind, existing=ObjectId(text(reply[1])))
        if kind == "LIMIT_PER_CUSTOMER":
            return ReserveOutcome(kind, limit=int(reply[1]), already=int(reply[2]))
        if kind == "OUT_OF_STOCK":
            return ReserveOutcome(kind, available=int(reply[1]))
        if kind == "NOT_ADMITTED":
            return ReserveOutcome(kind, position=int(reply[1]))
        return ReserveOutcome(kind)

    async def release(
        self, rid: ReservationId, now: int, status: ReservationStatus, owner: ObjectId | None
    ) -> ReleaseOutcome:
        keys = ProductKeys(rid.product_id)
        reply = await self._run(
            "release",
            [keys.stock, keys.holds, keys.expiry, keys.customers, keys.log],
            [str(rid.hold_id), now, status.value, keys.events, str(owner) if owner else ""],
        )
        return ReleaseOutcome(
            cast(ReleaseKind, text(reply[0])), text(reply[1]) if len(reply) > 1 else None
        )

    async def claim(
        self, rid: ReservationId, now: int, owner: ObjectId | None, token: str
    ) -> ClaimOutcome:
        keys = ProductKeys(rid.product_id)
        reply = await self._run(
            "claim",
            [keys.holds, keys.expiry, keys.claims],
            [str(rid.hold_id), now, str(owner) if owner else "", token],
        )
        kind = cast(ClaimKind, text(reply[0]))
        if kind == "NOT_ACTIVE":
            return ClaimOutcome(kind, status=text(reply[1]))
        if kind != "OK":
            return ClaimOutcome(kind)
        return ClaimOutcome(kind, hold=claimed_hold(rid, list(reply[1:])))

    async def unclaim(self, rid: ReservationId, token: str) -> bool:
        keys = ProductKeys(rid.product_id)
        reply = await self._run(
            "unclaim", [keys.holds, keys.expiry, keys.claims], [str(rid.hold_id), token]
        )
        return bool(int(reply))

    async def commit(self, hold: Hold, now: int) -> CommitKind:
        """Count a durable sale in Redis, once."""
        keys = ProductKeys(hold.product_id)
        reply = await self._run(
            "commit",
            [
                keys.stock,
                keys.holds,
                keys.expiry,
                keys.claims,
                keys.log,
                keys.customers,
                keys.sold,
            ],
            [
                str(hold.id.hold_id),
                now,
                keys.events,
                str(hold.customer_id),
                hold.quantity,
                int(hold.expires_at.timestamp() * 1000),
            ],
        )
        return cast(CommitKind, text(reply[0]))

    async def expire_due(self, product_ids: list[ObjectId], now: int, batch: int) -> int:
        """Expire due holds of every product, one round trip where the client can."""
        calls = []
        for product_id in product_ids:
            keys = ProductKeys(product_id)
            calls.append(
                (
                    [keys.stock, keys.holds, keys.expiry, keys.customers, keys.log],
                    [now, batch, keys.events],
                )
            )
        results = await self._call(self._scripts.run_many("expire", calls), "script expire")
        return sum(len(ended) for ended in results)

    # -- product state -------------------------------------------------------------------

    async def load(
        self,
        product: dict[str, Any],
        hold_ms: int,
        active: list[Hold],
        orders: list[RecordedOrder],
    ) -> bool:
        """Load the product with these ACTIVE holds and orders, only if Redis lacks it:
        True if it did."""
        keys = ProductKeys(product["_id"])
        reply = await self._run(
            "load",
            [keys.stock, keys.holds, keys.expiry, keys.customers, keys.sold],
            [
                product["total_stock"],
                product["max_per_customer"],
                to_ms(product.get("sale_starts_at")),
                to_ms(product.get("sale_ends_at")),
                hold_ms,
                json.dumps([recorded_hold(hold) for hold in active]),
                json.dumps([recorded_order(order) for order in orders]),
                product.get("version", 0),
                *room_rules(product),
            ],
        )
        return bool(int(reply))

    async def set_rules(
        self, product: dict[str, Any], hold_ms: int, now: int, *, force: bool
    ) -> SetRulesKind:
        keys = ProductKeys(product["_id"])
        reply = await self._run(
            "set_rules",
            [keys.stock],
            [
                product["total_stock"],
                product["max_per_customer"],
                to_ms(product.get("sale_starts_at")),
                to_ms(product.get("sale_ends_at")),
                hold_ms,
                keys.events,
                now,
                product.get("version", 0),
                "force" if force else "",
                *room_rules(product),
            ],
        )
        return cast(SetRulesKind, text(reply[0]))

    async def lower_total(self, product_id: ObjectId, total: int) -> LowerTotalOutcome:
        """OK: the drop is allowed (and applied); BELOW_COMMITTED with the committed units;
        NOT_LOADED: Redis lacks the product."""
        reply = await self._run("lower_total", [ProductKeys(product_id).stock], [total])
        kind = cast(LowerTotalKind, text(reply[0]))
        return LowerTotalOutcome(kind, int(reply[1]) if kind == "BELOW_COMMITTED" else 0)

    async def forget(self, product_id: ObjectId, hold_ids: list[str]) -> int:
        return int(await self._run("forget", [ProductKeys(product_id).holds], hold_ids))

    async def repair(
        self,
        product_id: ObjectId,
        *,
        unsell: list[str],
        orders: list[RecordedOrder],
        dry_run: bool,
    ) -> dict[str, Any]:
        keys = ProductKeys(product_id)
        reply = await self._run(
            "repair",
            [keys.stock, keys.holds, keys.expiry, keys.claims, keys.customers, keys.sold],
            [
                json.dumps(unsell),
                json.dumps([recorded_order(order) for order in orders]),
                "dry" if dry_run else "",
            ],
        )
        report: dict[str, Any] = json.loads(text(reply))
        return report

    # -- reads ---------------------------------------------------------------------------

    async def counters(self, product_ids: list[ObjectId]) -> dict[ObjectId, StockCounters]:
        """The counters of the loaded ones among these products, in one round trip."""

        async def read() -> list[Any]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for product_id in product_ids:
                    pipe.hmget(ProductKeys(product_id).stock, "total", "sold", "reserved")
                return list(await pipe.execute())

        rows = await self._call(read())
        return {
            product_id: StockCounters(*(int(text(v)) for v in row))
            for product_id, row in zip(product_ids, rows, strict=True)
            if row[0] is not None
        }

    async def hold(self, rid: ReservationId) -> Hold | None:
        raw = await self._call(self.redis.hget(ProductKeys(rid.product_id).holds, str(rid.hold_id)))
        return None if raw is None else hold_from_redis(rid, text(raw))

    async def holds(self, rids: list[ReservationId]) -> dict[ReservationId, Hold]:
        """These holds as Redis has them (those it has), in one round trip."""
        if not rids:
            return {}

        async def read() -> list[Any]:
            async with self.redis.pipeline(transaction=False) as pipe:
                for rid in rids:
                    pipe.hget(ProductKeys(rid.product_id).holds, str(rid.hold_id))
                return list(await pipe.execute())

        raws = await self._call(read())
        return {
            rid: hold_from_redis(rid, text(raw))
            for rid, raw in zip(rids, raws, strict=True)
            if raw is not None
        }

    async def product_holds(self, product_id: ObjectId) -> list[Hold]:
        raw = await self._call(self.redis.hgetall(ProductKeys(product_id).holds))
        return [
            hold_from_redis(ReservationId(product_id, ObjectId(text(k))), text(v))
            for k, v in raw.items()
        ]

    async def sold_record(self, product_id: ObjectId) -> dict[str, int]:
        """The sales Redis has counted for this product: hold id -> quantity."""
        raw = await self._call(self.redis.hgetall(ProductKeys(product_id).sold))
        return {text(k): sold_quantity(text(v)) for k, v in raw.items()}

    async def rules_version(self, product_id: ObjectId) -> int | None:
        """The product version whose total and rules Redis holds (None: not loaded)."""
        raw = await self._call(self.redis.hget(ProductKeys(product_id).stock, "version"))
        return None if raw is None else int(raw)

    async def loaded(self, product_id: ObjectId) -> bool:
        return bool(await self._call(self.redis.exists(ProductKeys(product_id).stock)))

    async def stale_claims(self, product_id: ObjectId, before_ms: int) -> list[StaleClaim]:
        """Claims made before `before_ms`, with the token that may put each back."""
        keys = ProductKeys(product_id)
        hold_ids = [
            text(raw)
            for raw in await self._call(self.redis.zrangebyscore(keys.claims, "-inf", before_ms))
        ]
        if not hold_ids:
            return []
        raws = await self._call(self.redis.hmget(keys.holds, hold_ids))
        stale = []
        for hold_id, raw in zip(hold_ids, raws, strict=True):
            token = claim_token(text(raw)) if raw is not None else None
            stale.append(StaleClaim(ReservationId(product_id, ObjectId(hold_id)), token or ""))
        return stale
