from typing import Annotated

import strawberry
from strawberry.types import Info

from graphql_api.catalog.types import Product, ProductConnection, ProductEdge, with_counters
from graphql_api.common import PageInfo, decode_cursor, encode_cursor, parse_id
from graphql_api.context import Context


@strawberry.type(description="What a storefront needs to know about the shop itself.")
class Shop:
    currency: str = strawberry.field(
        description="ISO 4217 code of every price and total (the CURRENCY setting), e.g. USD."
    )


@strawberry.type
class CatalogQueries:
    @strawberry.field(description="The shop's settings that storefronts show, e.g. its currency.")
    def shop(self, info: Info[Context, None]) -> Shop:
        return Shop(currency=info.context.services.settings.currency)

    @strawberry.field(description="Products in creation order, as a cursor connection.")
    async def products(
        self,
        info: Info[Context, None],
        first: int = 20,
        after: str | None = None,
        on_sale: Annotated[
            bool | None,
            strawberry.argument(
                description="true: sale window open now; false: not open; null: all."
            ),
        ] = None,
    ) -> ProductConnection:
        page = await info.context.services.catalog.page(
            first=first,
            after=decode_cursor(after) if after is not None else None,
            on_sale=on_sale,
        )
        nodes = await with_counters(info, page.products)
        edges = [
            ProductEdge(cursor=encode_cursor(document.id), node=node)
            for document, node in zip(page.products, nodes, strict=True)
        ]
        return ProductConnection(
            edges=edges,
            page_info=PageInfo(
                has_next_page=page.has_next_page,
                end_cursor=edges[-1].cursor if edges else None,
            ),
            _on_sale=on_sale,
        )

    @strawberry.field(description="One product; null when there is none with this id.")
    async def product(self, info: Info[Context, None], id: strawberry.ID) -> Product | None:
        found = await info.context.services.catalog.get(parse_id(id))
        return (await with_counters(info, [found]))[0] if found else None
