"""What graphql_api/strawberry_internals.py relies on, checked against the installed
Strawberry and graphql-core: a failure here after an upgrade names the private attribute or
message that changed, before a request finds out. When one fails, see the function's
docstring, and whether the library now offers a public way."""

from collections.abc import Iterator
from typing import Any

import pytest
import strawberry
from graphql import GraphQLError, GraphQLSchema, GraphQLSyntaxError, parse, validate
from graphql.validation import validation_context
from strawberry.extensions import ParserCache, SchemaExtension
from strawberry.types import ExecutionContext

from graphql_api.schema import build_schema
from graphql_api.strawberry_internals import (
    ReportingParserCache,
    graphql_schema,
    parsing_aborted,
    provided_operation_name,
    validation_aborted,
    variable_coercion_failed,
)


@strawberry.type
class Query:
    @strawberry.field
    def echo(self, times: int) -> int:
        return times


def test_the_graphql_core_schema_is_reachable() -> None:
    built = build_schema()
    schema = graphql_schema(built)
    assert isinstance(schema, GraphQLSchema)
    assert schema.query_type is not None
    assert "products" in schema.query_type.fields


def test_the_operation_name_the_request_sent_is_told_from_none() -> None:
    def context(provided: str | None) -> ExecutionContext:
        execution = ExecutionContext(
            query="query First { __typename } query Second { __typename }",
            schema=build_schema(),
            allowed_operations=(),
            provided_operation_name=provided,
        )
        execution.graphql_document = parse(execution.query or "")
        return execution

    assert provided_operation_name(context("Second")) == "Second"
    assert provided_operation_name(context(None)) is None
    # Why the public property is not enough: it names the first operation when none was sent.
    assert context(None).operation_name == "First"


async def test_the_stock_parser_cache_still_hides_syntax_errors_from_extensions() -> None:
    # Strawberry's ParserCache lets a syntax error escape from its on_parse hook: the
    # client gets the error, but no extension's on_operation sees the result (ErrorCodes
    # would not give it a code). If the stock one starts to show it, ReportingParserCache
    # can go.
    def seen_by_extensions(cache: type[ParserCache]) -> list[object]:
        seen: list[object] = []

        class Seen(SchemaExtension):
            def on_operation(self) -> Iterator[None]:
                yield
                seen.append(self.execution_context.result)

        schema = strawberry.Schema(query=Query, extensions=[Seen, lambda: cache(maxsize=10)])
        result = schema.execute_sync("{ echo(times: 1) ")
        assert result.errors is not None
        assert isinstance(result.errors[0], GraphQLSyntaxError)
        after_the_syntax_error = list(seen)
        assert schema.execute_sync("{ echo(times: 2) }").data == {"echo": 2}
        return after_the_syntax_error

    assert seen_by_extensions(ParserCache) == []
    assert len(seen_by_extensions(ReportingParserCache)) == 1


async def _errors(query: str, **options: Any) -> list[GraphQLError]:
    schema = strawberry.Schema(query=Query)
    result = await schema.execute(query, **options)
    assert result.errors
    return result.errors


async def test_graphql_core_s_messages_are_still_the_ones_told_apart(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(GraphQLSyntaxError) as too_long:
        parse("{ " + "a " * 50 + "}", max_tokens=10)
    assert parsing_aborted(too_long.value)
    [refused] = await _errors("query($t: Int!) { echo(times: $t) }", variable_values={"t": "x"})
    assert variable_coercion_failed(refused)
    [missing] = await _errors("query($t: Int!) { echo(times: $t) }", variable_values={})
    assert variable_coercion_failed(missing)
    # graphql-core lets its fragment budget be lowered (it documents the assignment).
    monkeypatch.setattr(validation_context, "MAX_FRAGMENT_WORK", 1)
    document = parse("{ ...A ...A ...A } fragment A on Query { echo(times: 1) }")
    errors = validate(graphql_schema(strawberry.Schema(query=Query)), document)
    assert [error.message for error in errors if validation_aborted(error)] == [
        "Validation aborted."
    ]
