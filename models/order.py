from datetime import datetime

import pymongo
from pydantic import Field
from pymongo import IndexModel

from models.common import utcnow
from models.stored import ObjectIdField, Stored


class Order(Stored):
    """Created by checkout from one reservation, at the unit price of that moment."""

    reservation_id: ObjectIdField
    product_id: ObjectIdField
    customer_id: ObjectIdField
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
