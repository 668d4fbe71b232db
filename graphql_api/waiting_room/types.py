from datetime import datetime

import strawberry

from graphql_api.problems import Problem
from models.common import utcnow
from reservations import Ticket, TicketState

WaitingRoomState = strawberry.enum(
    TicketState,
    name="WaitingRoomState",
    description="WAITING: in the queue; ADMITTED: reserve before admissionExpiresAt; "
    "RESERVED: the admission was used; EXPIRED: it lapsed (join again, at the back); "
    "SOLD_OUT: the stock is gone.",
)


@strawberry.type(description="Your ticket in a product's waiting room.")
class WaitingRoomTicket:
    product_id: strawberry.ID
    state: WaitingRoomState  # type: ignore[valid-type]
    joined_at: datetime
    position: int | None = strawberry.field(
        description="1: you are next. null before the sale starts (places are drawn at the "
        "start, at random among all who joined before it) and once you are not waiting."
    )
    people_ahead: int | None
    waiting: int = strawberry.field(
        description="How many wait in the queue (before the start: how many have joined)."
    )
    admissions_per_minute: float | None = strawberry.field(
        description="The measured pace of admissions (null until it can be measured)."
    )
    estimated_wait_seconds: int | None = strawberry.field(
        description="At that pace, how long until your turn."
    )
    admission_expires_at: datetime | None = strawberry.field(
        description="ADMITTED: reserve before this moment."
    )
    draws_at: datetime | None = strawberry.field(
        description="Before the start: when the places are drawn (the sale's start)."
    )

    @strawberry.field(description="ADMITTED: seconds left to reserve (0 otherwise).")
    def admission_seconds_left(self) -> int:
        if self.admission_expires_at is None:
            return 0
        return max(0, int((self.admission_expires_at - utcnow()).total_seconds()))

    @classmethod
    def from_ticket(cls, ticket: Ticket) -> "WaitingRoomTicket":
        return cls(
            product_id=strawberry.ID(str(ticket.product_id)),
            state=ticket.state,
            joined_at=ticket.joined_at,
            position=ticket.position,
            people_ahead=ticket.people_ahead,
            waiting=ticket.waiting,
            admissions_per_minute=ticket.admissions_per_minute,
            estimated_wait_seconds=ticket.estimated_wait_seconds,
            admission_expires_at=ticket.admission_expires_at,
            draws_at=ticket.draws_at,
        )


@strawberry.type
class WaitingRoomPayload:
    ticket: WaitingRoomTicket | None = None
    errors: list[Problem] = strawberry.field(default_factory=list)
