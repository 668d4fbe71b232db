"""The engine's values, and the one codec for a hold as Redis keeps it.

A hold is a JSON object in its product's holds hash: c customer, q quantity, s status,
cr created ms, ex deadline ms, k idempotency key ("" for none), en ended ms, cl the token of
the checkout that claimed it. The Lua scripts write and read the same fields.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from core.errors import InvalidInput
from models import ReservationStatus


def to_datetime(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def to_ms(moment: datetime | None) -> int:
    return -1 if moment is None else int(moment.timestamp() * 1000)


def text(value: Any) -> str:
    """A Redis reply value as str (replies are bytes unless the client decodes them)."""
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class ReservationId:
    """A hold's public id: its product's id and its own (48 hex digits), so any process can
    find the hold's Redis slot without a global index."""

    product_id: ObjectId
    hold_id: ObjectId

    def __str__(self) -> str:
        return f"{self.product_id}{self.hold_id}"

    @classmethod
    def parse(cls, raw: str, field: str = "reservationId") -> "ReservationId":
        try:
            if len(raw) != 48:
                raise InvalidId
            return cls(ObjectId(raw[:24]), ObjectId(raw[24:]))
        except (InvalidId, TypeError):
            raise InvalidInput(field, "is not a valid reservation id") from None


@dataclass(frozen=True)
class Hold:
    id: ReservationId
    customer_id: ObjectId
    quantity: int
    status: ReservationStatus
    created_at: datetime
    expires_at: datetime
    idempotency_key: str | None = None
    ended_at: datetime | None = None

    @property
    def product_id(self) -> ObjectId:
        return self.id.product_id


@dataclass(frozen=True)
class StockCounters:
    total: int
    sold: int
    reserved: int

    @property
    def available(self) -> int:
        return self.total - self.sold - self.reserved


@dataclass(frozen=True)
class Sale:
    """A completed checkout: the order as stored in MongoDB."""

    order_id: ObjectId
    hold: Hold
    unit_price_cents: int
    total_cents: int
    created_at: datetime


def hold_from_redis(rid: ReservationId, raw: str) -> Hold:
    data = json.loads(raw)
    ended = data.get("en")
    return Hold(
        id=rid,
        customer_id=ObjectId(data["c"]),
        quantity=int(data["q"]),
        status=ReservationStatus(data["s"]),
        created_at=to_datetime(int(data["cr"])),
        expires_at=to_datetime(int(data["ex"])),
        idempotency_key=data.get("k") or None,
        ended_at=to_datetime(int(ended)) if ended else None,
    )


def hold_to_redis(hold: Hold) -> dict[str, Any]:
    """The fields a script needs to recreate an ACTIVE hold (load.lua)."""
    return {
        "r": str(hold.id.hold_id),
        "c": str(hold.customer_id),
        "q": hold.quantity,
        "cr": to_ms(hold.created_at),
        "ex": to_ms(hold.expires_at),
        "k": hold.idempotency_key or "",
    }


def hold_from_document(document: dict[str, Any]) -> Hold:
    return Hold(
        id=ReservationId(document["product_id"], document["_id"]),
        customer_id=document["customer_id"],
        quantity=document["quantity"],
        status=ReservationStatus(document["status"]),
        created_at=document["created_at"],
        expires_at=document["expires_at"],
        idempotency_key=document.get("idempotency_key"),
        ended_at=document.get("ended_at"),
    )


def hold_from_change(product_id: ObjectId, change: dict[str, str]) -> Hold:
    """A hold as a change-log entry tells it (e: the status it reached, at: when)."""
    status = ReservationStatus(change["e"])
    return Hold(
        id=ReservationId(product_id, ObjectId(change["r"])),
        customer_id=ObjectId(change["c"]),
        quantity=int(change["q"]),
        status=status,
        created_at=to_datetime(int(change["cr"])),
        expires_at=to_datetime(int(change["ex"])),
        idempotency_key=change.get("k") or None,
        ended_at=None if status is ReservationStatus.ACTIVE else to_datetime(int(change["at"])),
    )
