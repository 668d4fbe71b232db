from datetime import datetime

import pymongo
from beanie import Document, PydanticObjectId
from pydantic import Field
from pymongo import IndexModel

from models.common import utcnow
from models.stored import Stored


class Order(Stored, Document):
    """Created by checkout from one reservation, at the unit price of that moment."""

    reservation_id: PydanticObjectId
    product_id: PydanticObjectId
    customer_id: PydanticObjectId
    quantity: int = Field(ge=1)
    unit_price_cents: int = Field(ge=0)
    total_cents: int = Field(ge=0)
    created_at: datetime = Field(default_factory=utcnow)

    class Settings:
        name = "orders"
        indexes = [
            IndexModel("reservation_id", unique=True),
            IndexModel([("created_at", pymongo.ASCENDING), ("product_id", pymongo.ASCENDING)]),
            IndexModel([("customer_id", pymongo.ASCENDING), ("created_at", pymongo.DESCENDING)]),
        ]
