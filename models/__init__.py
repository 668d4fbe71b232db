"""The documents of the system of record in MongoDB: each declares its collection and its
indexes once, and is reached on the database its caller was handed (`Stored.collection`)."""

from models.admin_request import AdminRequest
from models.indexes import DOCUMENT_MODELS, LEGACY_INDEXES, ensure_indexes
from models.order import Order
from models.product import Product, WaitingRoomRule
from models.reservation import Reservation, ReservationStatus
from models.rollup import DailyFunnel, DailySales
from models.room_ticket import RoomTicket
from models.stored import Database, Stored
from models.user import Role, User

__all__ = [
    "AdminRequest",
    "DOCUMENT_MODELS",
    "LEGACY_INDEXES",
    "DailyFunnel",
    "DailySales",
    "Database",
    "Order",
    "Product",
    "Reservation",
    "ReservationStatus",
    "Role",
    "RoomTicket",
    "Stored",
    "User",
    "WaitingRoomRule",
    "ensure_indexes",
]
