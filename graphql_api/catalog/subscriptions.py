import contextlib
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Annotated

import strawberry
from bson import ObjectId
from bson.errors import InvalidId
from strawberry.types import Info

from core.errors import InvalidInput
from graphql_api.catalog.types import Product, with_counters
from graphql_api.common import parse_id
from graphql_api.context import Context
from reservations.events import CATALOG_CHANNEL
from reservations.events import StockChange as StockChangeEvent
from reservations.feeds import stock_feed

MAX_PRODUCTS = 100


@strawberry.type(description="A product's stock at one moment.")
class StockChange:
    product_id: strawberry.ID
    available: int
    reserved: int
    sold: int
    at: datetime

    @classmethod
    def from_event(cls, event: StockChangeEvent) -> "StockChange":
        return cls(
            product_id=strawberry.ID(str(event.product_id)),
            available=event.available,
            reserved=event.reserved,
            sold=event.sold,
            at=event.at,
        )


@strawberry.type
class CatalogSubscriptions:
    @strawberry.subscription(
        description="The stock of these products: first as it is now, one per product, "
        "then again on every change, wherever it was made. Anyone may subscribe."
    )
    async def stock_changed(
        self,
        info: Info[Context, None],
        product_ids: Annotated[list[strawberry.ID], strawberry.argument(description="1 to 100.")],
    ) -> AsyncGenerator[StockChange, None]:
        ids = list(dict.fromkeys(parse_id(raw, "productIds") for raw in product_ids))
        if not 1 <= len(ids) <= MAX_PRODUCTS:
            raise InvalidInput("productIds", f"give 1 to {MAX_PRODUCTS} product ids")
        services = info.context.services
        feed = stock_feed(services.events, services.engine.counters, ids, "productIds")
        async with contextlib.aclosing(feed) as changes:
            async for change in changes:
                yield StockChange.from_event(change)

    @strawberry.subscription(
        description="Products as an admin creates them, with their stock, wherever that "
        "happened: a storefront lists a new product without a reload. Anyone may subscribe."
    )
    async def product_created(self, info: Info[Context, None]) -> AsyncGenerator[Product, None]:
        services = info.context.services
        async with services.events.subscribe([CATALOG_CHANNEL]) as subscription:
            while True:
                event = await subscription.queue.get()
                try:
                    product_id = ObjectId(event.data["product"])
                except (KeyError, TypeError, InvalidId):
                    continue
                document = await services.catalog.get(product_id)
                if document is not None:
                    yield (await with_counters(info, [document]))[0]
