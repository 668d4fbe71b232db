"""The engine's values: what its operations take and return, its ids and its clock. How
Redis spells them is reservations/codec.py's business alone; how MongoDB records them,
reservations/ledger.py's."""

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId

from core.errors import InvalidInput
from models import ReservationStatus

Clock = Callable[[], int]  # milliseconds since the epoch


def system_clock() -> int:
    return time.time_ns() // 1_000_000


def unguessable_id() -> ObjectId:
    """A hold or order id nobody can derive from another one (96 random bits); ObjectIds
    from a counter would make one customer's id another's minus one."""
    return ObjectId(os.urandom(12))


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


@dataclass(frozen=True)
class RecordedOrder:
    """What the counters need of an order MongoDB recorded."""

    hold_id: ObjectId
    customer_id: ObjectId
    quantity: int
