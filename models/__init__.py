"""Beanie documents and their indexes: the system of record in MongoDB."""

from models.order import Order
from models.product import Product, WaitingRoomRule
from models.reservation import LEGACY_INDEXES, Reservation, ReservationStatus
from models.rollup import DailyFunnel, DailySales
from models.room_ticket import RoomTicket
from models.user import Role, User

DOCUMENT_MODELS: list[type] = [
    Product,
    User,
    Reservation,
    Order,
    DailySales,
    DailyFunnel,
    RoomTicket,
]

__all__ = [
    "DOCUMENT_MODELS",
    "LEGACY_INDEXES",
    "DailyFunnel",
    "DailySales",
    "Order",
    "Product",
    "Reservation",
    "ReservationStatus",
    "Role",
    "RoomTicket",
    "User",
    "WaitingRoomRule",
]
