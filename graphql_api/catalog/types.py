from collections.abc import Sequence
from datetime import datetime

import strawberry
from strawberry.types import Info

from catalog.service import price_of
from graphql_api.common import Money, PageInfo
from graphql_api.context import Context
from graphql_api.problems import Problem
from models import Product as ProductDocument
from models.common import utcnow
from reservations import ReservationEngine, StockCounters
from reservations.errors import ServiceUnavailable


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


@strawberry.type
class ProductPayload:
    product: Product | None = None
    errors: list[Problem] = strawberry.field(default_factory=list)
