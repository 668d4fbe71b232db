"""Per-operation request metrics, as a schema extension: every GraphQL operation, over HTTP
or WebSocket, is counted and timed under "<type> <first root field>" (only for documents
that passed validation, so the names are the schema's and the label set stays small)."""

import time
from collections.abc import Iterator

from graphql import FieldNode, get_operation_ast
from strawberry.extensions import SchemaExtension
from strawberry.types import ExecutionContext

from telemetry import LATENCY, REQUESTS


def operation_label(context: ExecutionContext) -> str:
    document = context.graphql_document
    if document is None or context.pre_execution_errors:
        return "invalid"
    operation = get_operation_ast(document, context.operation_name)
    if operation is None:
        return "invalid"
    first = next(
        (node for node in operation.selection_set.selections if isinstance(node, FieldNode)),
        None,
    )
    field = first.name.value if first is not None else "fragment"
    return f"{operation.operation.value} {field}"


class OperationMetrics(SchemaExtension):
    def on_operation(self) -> Iterator[None]:
        started = time.perf_counter()
        yield
        context = self.execution_context
        label = operation_label(context)
        failed = bool(context.pre_execution_errors) or bool(
            context.result is not None and context.result.errors
        )
        REQUESTS.labels(label, "error" if failed else "ok").inc()
        LATENCY.labels(label).observe(time.perf_counter() - started)
