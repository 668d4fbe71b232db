from datetime import datetime

import pymongo
from pymongo import IndexModel

from models.stored import ObjectIdField, Stored


class DailySales(Stored):
    """Orders of one product on one UTC day, kept in step by checkout (same transaction)."""

    day: datetime  # midnight UTC
    product_id: ObjectIdField
    revenue_cents: int = 0
    units: int = 0
    orders: int = 0

    class Settings:
        name = "daily_sales"
        indexes = [
            IndexModel([("day", pymongo.ASCENDING), ("product_id", pymongo.ASCENDING)], unique=True)
        ]


class DailyFunnel(Stored):
    """Holds of one product created on one UTC day that are now in one status, kept in step
    by whoever records the hold's state (the persister, checkout), in the same transaction."""

    day: datetime  # midnight UTC, of the hold's created_at
    product_id: ObjectIdField
    status: str
    holds: int = 0

    class Settings:
        name = "daily_funnel"
        indexes = [
            IndexModel(
                [
                    ("day", pymongo.ASCENDING),
                    ("product_id", pymongo.ASCENDING),
                    ("status", pymongo.ASCENDING),
                ],
                unique=True,
            )
        ]
