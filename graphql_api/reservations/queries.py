from typing import Annotated

import strawberry
from strawberry.types import Info

from core.errors import InvalidInput
from graphql_api.context import Context
from graphql_api.permissions import IsAuthenticated
from graphql_api.reservations.types import Order, Reservation
from models import ReservationStatus
from reservations import ReservationId

LIST_MAX = 100


def _check_first(first: int) -> int:
    if not 1 <= first <= LIST_MAX:
        raise InvalidInput("first", f"must be between 1 and {LIST_MAX}")
    return first


@strawberry.type
class ReservationQueries:
    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="One of your reservations (any, for an admin); null if there is none.",
    )
    async def reservation(self, info: Info[Context, None], id: strawberry.ID) -> Reservation | None:
        rid = ReservationId.parse(id, "id")
        hold = await info.context.services.engine.find(rid, info.context.owner_scope())
        return Reservation.from_hold(hold) if hold else None

    @strawberry.field(
        permission_classes=[IsAuthenticated],
        description="Your reservations, newest first. A hold appears here once recorded in "
        "MongoDB, normally within a fraction of a second of the change.",
    )
    async def my_reservations(
        self,
        info: Info[Context, None],
        status: ReservationStatus | None = None,
        first: Annotated[int, strawberry.argument(description="1 to 100.")] = 50,
    ) -> list[Reservation]:
        holds = await info.context.services.engine.customer_holds(
            info.context.require_claims().user_id, status, _check_first(first)
        )
        return [Reservation.from_hold(hold) for hold in holds]

    @strawberry.field(
        permission_classes=[IsAuthenticated], description="Your orders, newest first."
    )
    async def my_orders(
        self,
        info: Info[Context, None],
        first: Annotated[int, strawberry.argument(description="1 to 100.")] = 50,
    ) -> list[Order]:
        sales = await info.context.services.engine.customer_sales(
            info.context.require_claims().user_id, _check_first(first)
        )
        return [Order.from_sale(sale) for sale in sales]
