from datetime import datetime

import pymongo
from pydantic import BaseModel, Field
from pymongo import IndexModel

from models.common import utcnow
from models.stored import Stored


class WaitingRoomRule(BaseModel):
    """A product's waiting room (see reservations/waiting_room.py): shoppers may join from
    `opens_before_seconds` ahead of the sale's start; each admission lasts
    `admission_seconds`; the room admits up to available x oversubscription_percent / 100
    shoppers who have not reserved yet."""

    enabled: bool = False
    opens_before_seconds: int = Field(default=3600, ge=0)
    admission_seconds: int = Field(default=90, ge=1)
    oversubscription_percent: int = Field(default=100, ge=100)


class Product(Stored):
    """A product on sale. Money is integer cents; `sold` only ever grows, by checkout."""

    name: str
    description: str = ""
    price_cents: int = Field(ge=0)
    total_stock: int = Field(ge=0)
    sold: int = Field(default=0, ge=0)
    version: int = 0  # bumped by every admin change, so Redis applies syncs in order
    max_per_customer: int = Field(ge=1)
    hold_seconds: int | None = None  # None: the RESERVATION_TTL_SECONDS default
    sale_starts_at: datetime | None = None
    sale_ends_at: datetime | None = None
    waiting_room: WaitingRoomRule | None = None  # None: no waiting room
    created_at: datetime = Field(default_factory=utcnow)
    updated_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "products"
        indexes = [
            IndexModel(
                [("sale_starts_at", pymongo.ASCENDING), ("sale_ends_at", pymongo.ASCENDING)]
            ),
        ]

    def on_sale(self, now: datetime) -> bool:
        started = self.sale_starts_at is None or self.sale_starts_at <= now
        not_ended = self.sale_ends_at is None or now < self.sale_ends_at
        return started and not_ended
