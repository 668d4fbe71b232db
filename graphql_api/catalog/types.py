from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal

import strawberry
from strawberry.types import Info

from catalog.service import price_of
from catalog.validation import waiting_room_rule
from graphql_api.common import Money, PageInfo
from graphql_api.context import Context
from graphql_api.problems import Problem
from models import Product as ProductDocument
from models import WaitingRoomRule
from models.common import utcnow
from reservations import ReservationEngine, StockCounters
from reservations.errors import ServiceUnavailable


@strawberry.type(
    description="A product's waiting room: shoppers join ahead of the start, get a random "
    "place if they joined before it (arrival order after), and may reserve once admitted."
)
class WaitingRoomSettings:
    enabled: bool
    opens_before_seconds: int = strawberry.field(
        description="How long before the sale's start shoppers may join."
    )
    admission_seconds: int = strawberry.field(
        description="How long an admission lasts: reserve within it."
    )
    oversubscription: float = strawberry.field(
        description="Shoppers admitted and not yet reserved, per unit available (1.5: up "
        "to 15 for 10 units)."
    )

    @classmethod
    def from_rule(cls, rule: WaitingRoomRule) -> "WaitingRoomSettings":
        return cls(
            enabled=rule.enabled,
            opens_before_seconds=rule.opens_before_seconds,
            admission_seconds=rule.admission_seconds,
            oversubscription=rule.oversubscription_percent / 100,
        )


@strawberry.input(description="A product's waiting room (see WaitingRoomSettings).")
class WaitingRoomInput:
    enabled: bool = True
    opens_before_seconds: int = strawberry.field(default=3600, description="0 to 604800.")
    admission_seconds: int = strawberry.field(default=90, description="5 to 3600.")
    oversubscription: float = strawberry.field(
        default=1.0, description="1 to 10, at most two decimals."
    )

    def to_rule(self) -> WaitingRoomRule:
        return waiting_room_rule(
            enabled=self.enabled,
            opens_before_seconds=self.opens_before_seconds,
            admission_seconds=self.admission_seconds,
            oversubscription=Decimal(str(self.oversubscription)),
        )


@strawberry.type(description="A product on sale. Money is exact: a decimal string.")
class Product:
    id: strawberry.ID
    name: str
    description: str
    price: Money
    total_stock: int
    max_per_customer: int
    sale_starts_at: datetime | None
    sale_ends_at: datetime | None
    created_at: datetime
    updated_at: datetime
    sold: int = strawberry.field(description="Units bought.")
    reserved: int = strawberry.field(description="Units held by active reservations.")
    available: int = strawberry.field(description="Units free to reserve now.")
    on_sale: bool = strawberry.field(description="Whether the sale window is open now.")
    hold_seconds: int = strawberry.field(
        description="How long a reservation of this product is held, in seconds."
    )
    waiting_room: WaitingRoomSettings | None = strawberry.field(
        default=None, description="null: no waiting room (reserve is first come)."
    )

    @classmethod
    def from_document(
        cls, product: ProductDocument, counters: StockCounters | None, hold_seconds: int
    ) -> "Product":
        """`counters`: the live ones from Redis; without them, what MongoDB knows (no holds).
        `hold_seconds`: the engine's (the product's own or the default)."""
        live = counters or StockCounters(product.total_stock, product.sold, 0)
        return cls(
            id=strawberry.ID(str(product.id)),
            name=product.name,
            description=product.description,
            price=Money(price_of(product)),
            total_stock=live.total,
            max_per_customer=product.max_per_customer,
            sale_starts_at=product.sale_starts_at,
            sale_ends_at=product.sale_ends_at,
            created_at=product.created_at,
            updated_at=product.updated_at,
            sold=live.sold,
            reserved=live.reserved,
            available=live.available,
            on_sale=product.on_sale(utcnow()),
            hold_seconds=hold_seconds,
            waiting_room=WaitingRoomSettings.from_rule(product.waiting_room)
            if product.waiting_room is not None and product.waiting_room.enabled
            else None,
        )


async def with_counters(
    info: Info[Context, None], documents: Sequence[ProductDocument]
) -> list[Product]:
    """GraphQL products with live counters: see `live_products`."""
    return await live_products(info.context.services.engine, documents)


async def live_products(
    engine: ReservationEngine, documents: Sequence[ProductDocument]
) -> list[Product]:
    """GraphQL products with live counters, read for all of them in one Redis round trip.
    While Redis is out of reach, MongoDB's figures: its sold count and its ACTIVE records
    (they trail the live ones by the persister's delay)."""
    ids = [d.id for d in documents]
    try:
        counters = await engine.counters(ids)
    except ServiceUnavailable:
        reserved = await engine.recorded_reserved(ids)
        counters = {
            d.id: StockCounters(d.total_stock, d.sold, reserved.get(d.id, 0)) for d in documents
        }
    return [
        Product.from_document(d, counters.get(d.id), engine.hold_seconds(d.hold_seconds))
        for d in documents
    ]


@strawberry.type
class ProductEdge:
    cursor: str
    node: Product


@strawberry.type
class ProductConnection:
    edges: list[ProductEdge]
    page_info: PageInfo
    _on_sale: strawberry.Private[bool | None]

    @strawberry.field(description="Products matching the filter, across all pages.")
    async def total_count(self, info: Info[Context, None]) -> int:
        return await info.context.services.catalog.count(on_sale=self._on_sale)


@strawberry.input
class ProductInput:
    name: str
    price: Money = strawberry.field(description='Decimal string, at most two places: "19.99".')
    total_stock: int
    description: str = ""
    max_per_customer: int | None = strawberry.field(default=None, description="Default 5.")
    hold_seconds: int | None = strawberry.field(
        default=None, description="Reservation hold; default RESERVATION_TTL_SECONDS."
    )
    sale_starts_at: datetime | None = None
    sale_ends_at: datetime | None = None
    waiting_room: WaitingRoomInput | None = strawberry.field(
        default=None, description="Default none: reserve is first come."
    )


@strawberry.input(description="Fields to change; omitted fields stay as they are.")
class ProductUpdateInput:
    name: str | None = strawberry.UNSET
    description: str | None = strawberry.UNSET
    price: Money | None = strawberry.UNSET
    total_stock: int | None = strawberry.UNSET
    max_per_customer: int | None = strawberry.UNSET
    hold_seconds: int | None = strawberry.field(
        default=strawberry.UNSET, description="null: back to the default."
    )
    sale_starts_at: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="null: no start (open now)."
    )
    sale_ends_at: datetime | None = strawberry.field(
        default=strawberry.UNSET, description="null: no end."
    )
    waiting_room: WaitingRoomInput | None = strawberry.field(
        default=strawberry.UNSET, description="null: no waiting room."
    )


@strawberry.type
class ProductPayload:
    product: Product | None = None
    errors: list[Problem] = strawberry.field(default_factory=list)
