import strawberry
from strawberry.types import Info

from graphql_api.common import parse_id
from graphql_api.context import Context
from graphql_api.guards import PerUserLimit
from graphql_api.permissions import IsAuthenticated
from graphql_api.problems import PayloadErrors
from graphql_api.waiting_room.types import WaitingRoomPayload, WaitingRoomTicket
from reservations.errors import ProductMissing, ReservationError


@strawberry.type
class WaitingRoomMutations:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        extensions=[
            PayloadErrors(ReservationError, ProductMissing),
            PerUserLimit("joinWaitingRoom"),
        ],
        description="Join a product's waiting room (from opensBeforeSeconds ahead of its "
        "start): one ticket per customer; joining again returns it and keeps your place.",
    )
    async def join_waiting_room(
        self, info: Info[Context, None], product_id: strawberry.ID
    ) -> WaitingRoomPayload:
        product = parse_id(product_id, "productId")
        customer = info.context.require_claims().user_id
        ticket = await info.context.services.engine.join_waiting_room(customer, product)
        return WaitingRoomPayload(ticket=WaitingRoomTicket.from_ticket(ticket))
