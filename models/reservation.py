from datetime import datetime
from enum import StrEnum

import pymongo
from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import IndexModel

from models.common import utcnow


class ReservationStatus(StrEnum):
    ACTIVE = "ACTIVE"
    COMPLETED = "COMPLETED"
    CANCELLED = "CANCELLED"
    EXPIRED = "EXPIRED"


class Reservation(Document):
    """A hold on stock. ACTIVE -> COMPLETED | CANCELLED | EXPIRED; terminal states are final."""

    product_id: PydanticObjectId
    customer_id: PydanticObjectId
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
            IndexModel(
                [("customer_id", pymongo.ASCENDING), ("idempotency_key", pymongo.ASCENDING)],
                unique=True,
                partialFilterExpression={"idempotency_key": {"$type": "string"}},
            ),
        ]
