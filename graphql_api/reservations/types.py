from datetime import datetime

import strawberry
from strawberry.types import Info

from catalog.validation import cents_to_price
from graphql_api.catalog.types import Product
from graphql_api.common import Money, parse_id
from graphql_api.context import Context
from graphql_api.problems import Problem
from models import ReservationStatus
from models.common import utcnow
from reservations import Hold, Sale

strawberry.enum(ReservationStatus, name="ReservationStatus")


async def _product(info: Info[Context, None], product_id: str) -> Product | None:
    return await info.context.loaders.product.load(parse_id(product_id))


@strawberry.type(
    description="A hold on stock, ACTIVE until it is checked out, cancelled or expires."
)
class Reservation:
    id: strawberry.ID
    product_id: strawberry.ID
    quantity: int
    status: ReservationStatus
    created_at: datetime
    expires_at: datetime = strawberry.field(description="When an ACTIVE hold gives its stock back.")
    ended_at: datetime | None
    idempotency_key: str | None

    @strawberry.field(description="Seconds until expiry (0 once the hold has ended).")
    def seconds_left(self) -> int:
        if self.status is not ReservationStatus.ACTIVE:
            return 0
        return max(0, int((self.expires_at - utcnow()).total_seconds()))

    @strawberry.field
    async def product(self, info: Info[Context, None]) -> Product | None:
        return await _product(info, self.product_id)

    @classmethod
    def from_hold(cls, hold: Hold) -> "Reservation":
        return cls(
            id=strawberry.ID(str(hold.id)),
            product_id=strawberry.ID(str(hold.product_id)),
            quantity=hold.quantity,
            status=hold.status,
            created_at=hold.created_at,
            expires_at=hold.expires_at,
            ended_at=hold.ended_at,
            idempotency_key=hold.idempotency_key,
        )


@strawberry.type(description="A purchase, made by checking out one reservation.")
class Order:
    id: strawberry.ID
    reservation_id: strawberry.ID
    product_id: strawberry.ID
    quantity: int
    unit_price: Money
    total: Money
    created_at: datetime

    @strawberry.field
    async def product(self, info: Info[Context, None]) -> Product | None:
        return await _product(info, self.product_id)

    @classmethod
    def from_sale(cls, sale: Sale) -> "Order":
        return cls(
            id=strawberry.ID(str(sale.order_id)),
            reservation_id=strawberry.ID(str(sale.hold.id)),
            product_id=strawberry.ID(str(sale.hold.product_id)),
            quantity=sale.hold.quantity,
            unit_price=Money(cents_to_price(sale.unit_price_cents)),
            total=Money(cents_to_price(sale.total_cents)),
            created_at=sale.created_at,
        )


@strawberry.type
class ReservationPayload:
    reservation: Reservation | None = None
    errors: list[Problem] = strawberry.field(default_factory=list)


@strawberry.type
class CheckoutPayload:
    order: Order | None = None
    reservation: Reservation | None = None
    errors: list[Problem] = strawberry.field(default_factory=list)
