"""The schema, merged from the domains. `sdl()` is what `schema.graphql` holds."""

from collections.abc import Callable

import strawberry
from graphql import GraphQLError
from strawberry.extensions import DisableIntrospection, SchemaExtension, ValidationCache
from strawberry.schema.config import StrawberryConfig
from strawberry.tools import merge_types
from strawberry.types import ExecutionContext

from graphql_api.accounts.mutations import AccountMutations
from graphql_api.accounts.queries import AccountQueries
from graphql_api.analytics.queries import AnalyticsQueries
from graphql_api.catalog.mutations import CatalogMutations
from graphql_api.catalog.queries import CatalogQueries
from graphql_api.catalog.subscriptions import CatalogSubscriptions
from graphql_api.common import MONEY_SCALAR, Money
from graphql_api.errors import ErrorCodes
from graphql_api.guards import QueryGuards
from graphql_api.metrics import OperationMetrics
from graphql_api.reservations.mutations import ReservationMutations
from graphql_api.reservations.queries import ReservationQueries
from graphql_api.reservations.subscriptions import ReservationSubscriptions
from graphql_api.strawberry_internals import ReportingParserCache
from graphql_api.waiting_room.mutations import WaitingRoomMutations
from graphql_api.waiting_room.queries import WaitingRoomQueries
from graphql_api.waiting_room.subscriptions import WaitingRoomSubscriptions


class _Schema(strawberry.Schema):
    def process_errors(
        self, errors: list[GraphQLError], execution_context: ExecutionContext | None = None
    ) -> None:
        """Strawberry logs every error as a server error; client errors are not ours, and
        ErrorCodes logs the unexpected ones with their request id."""


Query = merge_types(
    "Query",
    (CatalogQueries, ReservationQueries, WaitingRoomQueries, AccountQueries, AnalyticsQueries),
)
Mutation = merge_types(
    "Mutation", (AccountMutations, CatalogMutations, ReservationMutations, WaitingRoomMutations)
)
Subscription = merge_types(
    "Subscription", (CatalogSubscriptions, ReservationSubscriptions, WaitingRoomSubscriptions)
)


def build_schema(
    guards: QueryGuards | None = None, *, introspection: bool = True
) -> strawberry.Schema:
    # Factories: each request gets fresh extension instances (the caches themselves are
    # module-level and shared). The token limit must set the parser's options before the
    # parser cache parses.
    extensions: list[type[SchemaExtension] | Callable[[], SchemaExtension]] = [
        OperationMetrics,
        ErrorCodes,
        *(guards or QueryGuards()).extensions(),
        lambda: ReportingParserCache(maxsize=1_000),
        lambda: ValidationCache(maxsize=1_000),
    ]
    if not introspection:
        extensions.append(DisableIntrospection)
    return _Schema(
        query=Query,
        mutation=Mutation,
        subscription=Subscription,
        extensions=extensions,
        config=StrawberryConfig(scalar_map={Money: MONEY_SCALAR}),
    )


def sdl() -> str:
    return build_schema().as_str() + "\n"
