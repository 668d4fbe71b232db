"""The waiting rooms' funnel over a time range, from the tickets the room recorder keeps in
MongoDB (room_tickets): those who joined in the range, how many were admitted, reserved
with their turn, bought what they reserved, or let their turn lapse, and the median wait
from joining (or from the start, for those who joined before it) to the turn."""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from models import Order, RoomTicket


@dataclass(frozen=True)
class RoomFunnel:
    joined: int
    admitted: int
    reserved: int
    bought: int
    abandoned: int  # admitted, and the turn lapsed unused
    median_wait_seconds: float | None  # None: nobody admitted


async def room_funnel(
    database: AsyncDatabase[dict[str, Any]],
    start: datetime,
    end: datetime,
    product_id: ObjectId | None = None,
) -> RoomFunnel:
    """Tickets that joined from `start` (included) to `end` (excluded), of one product or
    all, through the joined_at index; the buyers are the orders of their reservations."""
    tickets = RoomTicket.collection(database)
    joined: dict[str, Any] = {"joined_at": {"$gte": start, "$lt": end}}
    if product_id is not None:
        joined["product_id"] = product_id
    admitted = {**joined, "admitted_at": {"$ne": None}}
    reserved = {**joined, "reservation_id": {"$ne": None}}
    counts = [await tickets.count_documents(query) for query in (joined, admitted, reserved)]
    holds = [
        ticket["reservation_id"]
        async for ticket in tickets.find(reserved, {"reservation_id": 1, "_id": 0})
    ]
    bought = (
        await Order.collection(database).count_documents({"reservation_id": {"$in": holds}})
        if holds
        else 0
    )
    return RoomFunnel(
        joined=counts[0],
        admitted=counts[1],
        reserved=counts[2],
        bought=bought,
        abandoned=await tickets.count_documents({**joined, "lapsed_at": {"$ne": None}}),
        median_wait_seconds=await _median_wait(tickets, admitted, counts[1]),
    )


async def _median_wait(tickets: Any, admitted: dict[str, Any], count: int) -> float | None:
    if not count:
        return None
    middle = (
        await tickets.find(admitted, {"wait_ms": 1, "_id": 0})
        .sort("wait_ms", 1)
        .skip((count - 1) // 2)
        .limit(1 if count % 2 else 2)
        .to_list(None)
    )
    waits = [int(row["wait_ms"]) for row in middle]
    return sum(waits) / len(waits) / 1000
