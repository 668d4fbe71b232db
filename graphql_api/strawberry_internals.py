"""What the API needs from Strawberry and graphql-core that neither offers publicly, in one
module. Each function names what it relies on; tests/graphql_api/test_strawberry_internals.py
fails when an upgrade takes one away, and names what to look at. Nothing else in the code
reaches into either library's private attributes or reads their error messages.
"""

import contextlib
from collections.abc import Iterator

import strawberry
from graphql import GraphQLError, GraphQLSchema, GraphQLSyntaxError
from strawberry.extensions import ParserCache
from strawberry.types import ExecutionContext


def graphql_schema(schema: strawberry.Schema) -> GraphQLSchema:
    """The graphql-core schema Strawberry built from ours: graphql-core's own functions
    (validation, the cost walk) take it. Strawberry keeps it as `Schema._schema`, with no
    public accessor."""
    return schema._schema


def provided_operation_name(execution: ExecutionContext) -> str | None:
    """The `operationName` the request sent; None when it sent none. The public
    `ExecutionContext.operation_name` falls back to the first operation's name, so it cannot
    tell "none sent" from "the first one named"; Strawberry takes the sent one as an
    InitVar and keeps it only as `_provided_operation_name`."""
    name = execution._provided_operation_name
    return name if isinstance(name, str) else None


class ReportingParserCache(ParserCache):
    """ParserCache that lets Strawberry report syntax errors itself.

    The stock extension parses in its own `on_parse` hook and lets a syntax error escape
    from there, outside the operation, where no extension (ErrorCodes included) sees the
    result. Here the document is left unset instead, so Strawberry parses again inside the
    operation and reports the error as any other; failed parses are not cached anyway.
    This re-implements `on_parse` around the stock extension's `cached_parse_document`.
    """

    def on_parse(self) -> Iterator[None]:
        context = self.execution_context
        with contextlib.suppress(GraphQLError):
            context.graphql_document = self.cached_parse_document(
                context.query, **context.parse_options
            )
        yield


# graphql-core's errors carry no codes: these few are told apart by their message.


def parsing_aborted(error: GraphQLSyntaxError) -> bool:
    """The parser stopped at one of its resource limits (tokens, length, nesting)."""
    return error.message.endswith("Parsing aborted.")


def validation_aborted(error: GraphQLError) -> bool:
    """Validation stopped at one of graphql-core's limits (fragments nested too deep)."""
    return error.message == "Validation aborted."


def variable_coercion_failed(error: GraphQLError) -> bool:
    """A variable's value was refused while it was coerced, before execution ("Variable
    '$x' got invalid value ...", "... of required type ... was not provided"): the client's
    input, not a malformed document."""
    return error.message.startswith("Variable '$")
