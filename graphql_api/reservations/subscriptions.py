from collections.abc import AsyncGenerator
from contextlib import aclosing
from datetime import datetime

import strawberry
from strawberry.types import Info

from graphql_api.context import Context
from graphql_api.permissions import IsAuthenticated
from models import ReservationStatus
from reservations.events import HoldChange
from reservations.feeds import hold_feed


@strawberry.type(description="A change of one of the caller's holds.")
class ReservationEvent:
    reservation_id: strawberry.ID
    product_id: strawberry.ID
    status: ReservationStatus = strawberry.field(
        description="ACTIVE: created; EXPIRED, CANCELLED or COMPLETED: ended."
    )
    quantity: int
    expires_at: datetime
    at: datetime

    @classmethod
    def from_change(cls, change: HoldChange) -> "ReservationEvent":
        return cls(
            reservation_id=strawberry.ID(str(change.reservation_id)),
            product_id=strawberry.ID(str(change.reservation_id.product_id)),
            status=change.status,
            quantity=change.quantity,
            expires_at=change.expires_at,
            at=change.at,
        )


@strawberry.type
class ReservationSubscriptions:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="The caller's own holds as they are created and end (expired, "
        "cancelled, completed), wherever that happened: a storefront can end a countdown "
        "the moment its hold expires.",
    )
    async def my_reservation_events(
        self, info: Info[Context, None]
    ) -> AsyncGenerator[ReservationEvent, None]:
        customer = info.context.require_claims().user_id
        async with aclosing(hold_feed(info.context.services.events, customer)) as feed:
            async for change in feed:
                yield ReservationEvent.from_change(change)
