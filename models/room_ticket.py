from datetime import datetime

import pymongo
from pymongo import IndexModel

from models.stored import ObjectIdField, Stored


class RoomTicket(Stored):
    """One waiting-room ticket as the room recorder saw its steps (for analytics: the room
    itself lives in Redis). A customer who joins again after their turn gets a new one."""

    product_id: ObjectIdField
    customer_id: ObjectIdField
    joined_at: datetime
    admitted_at: datetime | None = None
    wait_ms: int | None = None  # from the join, or from the start for those who joined before
    lapsed_at: datetime | None = None
    reserved_at: datetime | None = None
    reservation_id: ObjectIdField | None = None  # the hold the admission made

    class Settings:
        name = "room_tickets"
        indexes = [
            IndexModel(
                [
                    ("product_id", pymongo.ASCENDING),
                    ("customer_id", pymongo.ASCENDING),
                    ("joined_at", pymongo.ASCENDING),
                ],
                unique=True,
            ),
            IndexModel([("joined_at", pymongo.ASCENDING)]),
        ]
