import strawberry
from strawberry.types import Info

from graphql_api.common import parse_id
from graphql_api.context import Context
from graphql_api.guards import PerUserLimit
from graphql_api.permissions import IsAuthenticated
from graphql_api.problems import PayloadErrors
from graphql_api.reservations.types import CheckoutPayload, Order, Reservation, ReservationPayload
from reservations import ReservationId
from reservations.errors import ProductMissing, ReservationError


@strawberry.type
class ReservationMutations:
    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        # A product that does not exist is the catalog's PRODUCT_NOT_FOUND.
        extensions=[PayloadErrors(ReservationError, ProductMissing), PerUserLimit("reserve")],
        description="Hold units of a product for the caller. The same idempotencyKey returns "
        "the first reservation and changes nothing more.",
    )
    async def reserve(
        self,
        info: Info[Context, None],
        product_id: strawberry.ID,
        quantity: int,
        idempotency_key: str | None = None,
    ) -> ReservationPayload:
        product = parse_id(product_id, "productId")
        claims = info.context.require_claims()
        hold = await info.context.services.engine.reserve(
            claims.user_id, product, quantity, idempotency_key
        )
        return ReservationPayload(reservation=Reservation.from_hold(hold))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        extensions=[PayloadErrors(ReservationError)],
        description="End an ACTIVE hold and give its stock back.",
    )
    async def cancel_reservation(
        self, info: Info[Context, None], reservation_id: strawberry.ID
    ) -> ReservationPayload:
        rid = ReservationId.parse(reservation_id)
        owner = info.context.owner_scope()
        hold = await info.context.services.engine.cancel(rid, owner)
        return ReservationPayload(reservation=Reservation.from_hold(hold))

    @strawberry.mutation(
        permission_classes=[IsAuthenticated],
        extensions=[PayloadErrors(ReservationError), PerUserLimit("checkout")],
        description="Buy an ACTIVE hold (payment is mocked and succeeds). Durable before it "
        "answers; retrying returns the same order.",
    )
    async def checkout(
        self, info: Info[Context, None], reservation_id: strawberry.ID
    ) -> CheckoutPayload:
        rid = ReservationId.parse(reservation_id)
        owner = info.context.owner_scope()
        sale = await info.context.services.engine.checkout(rid, owner)
        return CheckoutPayload(
            order=Order.from_sale(sale), reservation=Reservation.from_hold(sale.hold)
        )
