from datetime import datetime
from enum import StrEnum

import pymongo
from pydantic import Field
from pymongo import IndexModel

from models.common import utcnow
from models.stored import ObjectIdField, Stored


class ReservationStatus(StrEnum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class Reservation(Stored):
    """A hold on stock. ACTIVE -> COMPLETED | CANCELLED | EXPIRED; terminal states are final.

    The idempotency key is kept for the record only: Redis decides it, per customer and
    product, for 24 hours (after that the same key makes a new hold), so it is not unique
    here. Older versions had a unique index on (customer, key); see
    models.indexes.LEGACY_INDEXES."""

    product_id: ObjectIdField
    customer_id: ObjectIdField
    quantity: int = Field(ge=1)
    status: ReservationStatus = ReservationStatus.ACTIVE
    idempotency_key: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    expires_at: datetime
    ended_at: datetime | None = None

    class Settings:
        name = "reservations"
        indexes = [
            IndexModel([("customer_id", pymongo.ASCENDING), ("created_at", pymongo.DESCENDING)]),
            IndexModel([("product_id", pymongo.ASCENDING), ("status", pymongo.ASCENDING)]),
            IndexModel([("created_at", pymongo.ASCENDING), ("status", pymongo.ASCENDING)]),
        ]
