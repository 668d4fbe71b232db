"""The one codec for the engine's data as Redis keeps it: nobody else in Python spells
these fields. The Lua scripts read and write the same fields (lua/prelude.lua points here).

- A hold is a JSON object in its product's holds hash: c customer, q quantity, s status,
  cr created ms, ex deadline ms, k idempotency key ("" for none), en ended ms, cl the token
  of the checkout that claimed it.
- A change-log entry (the product's stream, read by the persister) tells the state a hold
  reached: e that status, r hold id, c q cr ex k as in the hold, at when (ms).
- The sold record (a hash) counts each sale once: hold id -> "quantity:customer".
- load.lua and repair.lua take recorded holds as {r, c, q, cr, ex, k} and recorded orders
  as {r, c, q}.
- A product's waiting-room rules sit in its stock hash beside its other rules: room (1: on),
  room_open (ms before the start it opens), room_admit (an admission's ms), room_over
  (oversubscription, percent). A waiting-room ticket is a JSON object in the room's tickets
  hash: s state (WAITING ADMITTED RESERVED EXPIRED), z place score, j joined ms, a admitted
  ms, d admission deadline ms, o admission number, u reserved ms, r the hold it reserved.
  The room's change log (a stream) tells each ticket's steps: e JOINED ADMITTED LAPSED
  RESERVED, c customer, j the ticket's join ms, at when, w the wait (ms, ADMITTED), r the
  hold (RESERVED; "" otherwise).
"""

import json
from dataclasses import dataclass
from typing import Any

from bson import ObjectId

from models import ReservationStatus
from reservations.values import Hold, RecordedOrder, ReservationId, text, to_datetime, to_ms


def room_rules(product: dict[str, Any]) -> list[int]:
    """The product's waiting-room rules as load.lua and set_rules.lua store them: on (1/0),
    opens before the start (ms), admission (ms), oversubscription (percent)."""
    room = product.get("waiting_room") or {}
    if not room.get("enabled"):
        return [0, 0, 0, 100]
    return [
        1,
        int(room["opens_before_seconds"]) * 1000,
        int(room["admission_seconds"]) * 1000,
        int(room["oversubscription_percent"]),
    ]


@dataclass(frozen=True)
class TicketRecord:
    """A waiting-room ticket as Redis keeps it (times in ms; 0: not yet)."""

    state: str
    score: float
    joined_ms: int
    admitted_ms: int
    deadline_ms: int
    admission_number: int
    reserved_ms: int


def ticket_from_redis(raw: str) -> TicketRecord:
    data = json.loads(raw)
    return TicketRecord(
        state=data["s"],
        score=float(data["z"]),
        joined_ms=int(data["j"]),
        admitted_ms=int(data.get("a", 0)),
        deadline_ms=int(data.get("d", 0)),
        admission_number=int(data.get("o", 0)),
        reserved_ms=int(data.get("u", 0)),
    )


def hold_from_redis(rid: ReservationId, raw: str) -> Hold:
    """A hold from its JSON in the holds hash."""
    data = json.loads(raw)
    ended = data.get("en")
    return Hold(
        id=rid,
        customer_id=ObjectId(data["c"]),
        quantity=int(data["q"]),
        status=ReservationStatus(data["s"]),
        created_at=to_datetime(int(data["cr"])),
        expires_at=to_datetime(int(data["ex"])),
        idempotency_key=data.get("k") or None,
        ended_at=to_datetime(int(ended)) if ended else None,
    )


def claim_token(raw: str) -> str | None:
    """The token of the checkout that claimed this hold (None: not claimed)."""
    token = json.loads(raw).get("cl")
    return str(token) if token else None


def claimed_hold(rid: ReservationId, reply: list[Any]) -> Hold:
    """The ACTIVE hold claim.lua returned: {customer, qty, created, expires, key}."""
    customer, quantity, created, expires, key = reply
    return Hold(
        id=rid,
        customer_id=ObjectId(text(customer)),
        quantity=int(quantity),
        status=ReservationStatus.ACTIVE,
        created_at=to_datetime(int(created)),
        expires_at=to_datetime(int(expires)),
        idempotency_key=text(key) or None,
    )


def hold_from_change(product_id: ObjectId, change: dict[str, str]) -> Hold:
    """A hold as a change-log entry tells it (e: the status it reached, at: when)."""
    status = ReservationStatus(change["e"])
    return Hold(
        id=ReservationId(product_id, ObjectId(change["r"])),
        customer_id=ObjectId(change["c"]),
        quantity=int(change["q"]),
        status=status,
        created_at=to_datetime(int(change["cr"])),
        expires_at=to_datetime(int(change["ex"])),
        idempotency_key=change.get("k") or None,
        ended_at=None if status is ReservationStatus.ACTIVE else to_datetime(int(change["at"])),
    )


def sold_quantity(raw: str) -> int:
    """The quantity of one entry of the sold record ("quantity:customer")."""
    return int(raw.split(":", 1)[0])


def recorded_hold(hold: Hold) -> dict[str, Any]:
    """An ACTIVE hold as load.lua recreates it."""
    return {
        "r": str(hold.id.hold_id),
        "c": str(hold.customer_id),
        "q": hold.quantity,
        "cr": to_ms(hold.created_at),
        "ex": to_ms(hold.expires_at),
        "k": hold.idempotency_key or "",
    }


def recorded_order(order: RecordedOrder) -> dict[str, Any]:
    """An order as load.lua and repair.lua count it."""
    return {"r": str(order.hold_id), "c": str(order.customer_id), "q": order.quantity}
