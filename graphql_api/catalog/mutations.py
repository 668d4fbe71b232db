from typing import Annotated, Any

import strawberry
from strawberry.types import Info

from catalog.errors import CatalogError
from catalog.validation import ProductDraft
from graphql_api.catalog.types import (
    ProductInput,
    ProductPayload,
    ProductUpdateInput,
    with_counters,
)
from graphql_api.common import parse_id
from graphql_api.context import Context
from graphql_api.permissions import IsAdmin
from graphql_api.problems import PayloadErrors


def _given(update: ProductUpdateInput) -> dict[str, Any]:
    """The fields the client sent (null included, omitted left out)."""
    given = {name: value for name, value in vars(update).items() if value is not strawberry.UNSET}
    if given.get("waiting_room") is not None:
        given["waiting_room"] = given["waiting_room"].to_rule()
    return given


KEY = (
    "1 to 128 characters, new for each change you mean: a retry with it (say after "
    "SERVICE_UNAVAILABLE, when the first answer was lost) returns the first outcome and "
    "changes nothing again; with another request it is IDEMPOTENCY_KEY_REUSED."
)


@strawberry.type
class CatalogMutations:
    @strawberry.mutation(
        permission_classes=[IsAdmin],
        extensions=[PayloadErrors(CatalogError)],
        description="Admin: add a product.",
    )
    async def create_product(
        self,
        info: Info[Context, None],
        input: ProductInput,
        idempotency_key: Annotated[str | None, strawberry.argument(description=KEY)] = None,
    ) -> ProductPayload:
        draft = ProductDraft.parse(
            name=input.name,
            price=input.price,
            total_stock=input.total_stock,
            description=input.description,
            max_per_customer=input.max_per_customer,
            hold_seconds=input.hold_seconds,
            sale_starts_at=input.sale_starts_at,
            sale_ends_at=input.sale_ends_at,
            waiting_room=input.waiting_room.to_rule() if input.waiting_room else None,
        )
        product = await info.context.services.catalog.create(draft, idempotency_key)
        return ProductPayload(product=(await with_counters(info, [product]))[0])

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        extensions=[PayloadErrors(CatalogError)],
        description="Admin: change a product.",
    )
    async def update_product(
        self, info: Info[Context, None], id: strawberry.ID, input: ProductUpdateInput
    ) -> ProductPayload:
        product_id = parse_id(id)
        product = await info.context.services.catalog.update(product_id, _given(input))
        return ProductPayload(product=(await with_counters(info, [product]))[0])

    @strawberry.mutation(
        permission_classes=[IsAdmin],
        extensions=[PayloadErrors(CatalogError)],
        description="Admin: add units to stock.",
    )
    async def restock(
        self,
        info: Info[Context, None],
        id: strawberry.ID,
        quantity: int,
        idempotency_key: Annotated[str | None, strawberry.argument(description=KEY)] = None,
    ) -> ProductPayload:
        product_id = parse_id(id)
        product = await info.context.services.catalog.restock(product_id, quantity, idempotency_key)
        return ProductPayload(product=(await with_counters(info, [product]))[0])
