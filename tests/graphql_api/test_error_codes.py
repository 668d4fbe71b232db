"""ErrorCodes on a schema of its own: every error leaves with a code and without its
original exception, for an operation's result and for each event of a subscription."""

from collections.abc import AsyncGenerator
from typing import Any

import strawberry
from graphql import GraphQLError

from graphql_api.errors import ErrorCodes


@strawberry.type
class Query:
    @strawberry.field
    def broken(self) -> int:
        raise RuntimeError("a bug, with a secret")

    @strawberry.field
    def fine(self) -> int:
        return 1


@strawberry.type
class Subscription:
    @strawberry.subscription
    async def ticks(self) -> AsyncGenerator[int, None]:
        yield 1
        raise RuntimeError("a bug, with a secret")


SCHEMA = strawberry.Schema(query=Query, subscription=Subscription, extensions=[ErrorCodes])


def _masked(error: GraphQLError) -> None:
    assert error.message.startswith("Internal server error (request id ")
    assert error.extensions is not None
    assert error.extensions["code"] == "INTERNAL_SERVER_ERROR"
    assert error.original_error is None


async def test_an_unexpected_error_is_masked_and_coded() -> None:
    result = await SCHEMA.execute("{ fine broken }")
    assert result.data is None or result.data.get("fine") == 1
    assert result.errors is not None
    [error] = result.errors
    _masked(error)


async def test_document_errors_get_their_code() -> None:
    result = await SCHEMA.execute("{ fine missing }")
    assert result.errors is not None
    assert [e.extensions for e in result.errors] == [{"code": "GRAPHQL_VALIDATION_FAILED"}]
    result = await SCHEMA.execute("{ fine ")
    assert result.errors is not None
    assert [e.extensions for e in result.errors] == [{"code": "GRAPHQL_PARSE_FAILED"}]


async def test_each_event_of_a_subscription_is_coded_as_it_leaves() -> None:
    events: list[Any] = []
    stream = await SCHEMA.subscribe("subscription { ticks }")
    assert not isinstance(stream, strawberry.types.ExecutionResult)
    async for event in stream:
        events.append(event)
    assert events[0].data == {"ticks": 1}
    assert not events[0].errors
    [error] = events[-1].errors
    _masked(error)
