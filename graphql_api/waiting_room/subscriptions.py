import contextlib
from collections.abc import AsyncGenerator

import strawberry
from strawberry.types import Info

from graphql_api.common import parse_id
from graphql_api.context import Context
from graphql_api.permissions import IsAuthenticated
from graphql_api.waiting_room.types import WaitingRoomTicket
from reservations.feeds import waiting_room_feed


@strawberry.type
class WaitingRoomSubscriptions:
    @strawberry.subscription(
        permission_classes=[IsAuthenticated],
        description="Your ticket in the product's waiting room: first as it is now (null: "
        "not joined), then whenever it changes (your place, the estimate, your admission, "
        "sold out), wherever the change was made.",
    )
    async def waiting_room(
        self, info: Info[Context, None], product_id: strawberry.ID
    ) -> AsyncGenerator[WaitingRoomTicket | None, None]:
        product = parse_id(product_id, "productId")
        customer = info.context.require_claims().user_id
        services = info.context.services
        feed = waiting_room_feed(
            services.events, services.engine.waiting_room_ticket, customer, product
        )
        async with contextlib.aclosing(feed) as tickets:
            async for ticket in tickets:
                yield WaitingRoomTicket.from_ticket(ticket) if ticket else None
