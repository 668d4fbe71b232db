import strawberry
from strawberry.types import Info

from graphql_api.common import parse_id
from graphql_api.context import Context
from graphql_api.permissions import IsAuthenticated
from graphql_api.waiting_room.types import WaitingRoomTicket


@strawberry.type
class WaitingRoomQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Your ticket in the product's waiting room; null if you have not joined.",
    )
    async def my_waiting_room(
        self, info: Info[Context, None], product_id: strawberry.ID
    ) -> WaitingRoomTicket | None:
        product = parse_id(product_id, "productId")
        customer = info.context.require_claims().user_id
        ticket = await info.context.services.engine.waiting_room_ticket(customer, product)
        return WaitingRoomTicket.from_ticket(ticket) if ticket else None
