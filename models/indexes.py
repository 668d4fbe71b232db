"""Every collection's indexes, as the documents declare them, created on a given database."""

import logging
from typing import Any

from pymongo.asynchronous.database import AsyncDatabase

from models.admin_request import AdminRequest
from models.order import Order
from models.product import Product
from models.reservation import Reservation
from models.rollup import DailyFunnel, DailySales
from models.room_ticket import RoomTicket
from models.stored import Stored
from models.user import User

DOCUMENT_MODELS: list[type[Stored]] = [
    Product,
    User,
    Reservation,
    Order,
    DailySales,
    DailyFunnel,
    RoomTicket,
    AdminRequest,
]

# Indexes earlier versions declared that must not stay: dropped at start-up where they exist.
# (Reservations had a unique index on (customer, idempotency key); see Reservation.)
LEGACY_INDEXES = {Reservation: ["customer_id_1_idempotency_key_1"]}

logger = logging.getLogger("flashsale")


async def ensure_indexes(database: AsyncDatabase[dict[str, Any]]) -> None:
    """Create every document's declared indexes where they are missing (idempotent), and
    drop those an older version created that would now refuse valid writes."""
    for model in DOCUMENT_MODELS:
        await model.collection(database).create_indexes(model.Settings.indexes)
    for model, names in LEGACY_INDEXES.items():
        collection = model.collection(database)
        existing = await collection.index_information()
        for name in names:
            if name in existing:
                logger.info("dropping legacy index %s.%s", collection.name, name)
                await collection.drop_index(name)
