"""Every GraphQL error leaves with `extensions.code`; unexpected ones are masked.

Business outcomes (out of stock, e-mail taken...) are not errors here: they are typed in the
mutation payloads. This module covers transport-level errors: auth, bad input, malformed
documents, and bugs.
"""

import logging
from collections.abc import Iterator
from enum import StrEnum
from typing import Any

from graphql import GraphQLError, GraphQLSyntaxError
from strawberry.exceptions import MissingQueryError
from strawberry.extensions import SchemaExtension
from strawberry.schema.exceptions import CannotGetOperationTypeError

from core.errors import InvalidInput
from core.outages import unavailable_store
from core.request_id import current_request_id
from graphql_api.strawberry_internals import (
    parsing_aborted,
    validation_aborted,
    variable_coercion_failed,
)
from reservations.errors import ServiceUnavailable

logger = logging.getLogger("flashsale.errors")


class ErrorCode(StrEnum):
    UNAUTHENTICATED = "UNAUTHENTICATED"
    FORBIDDEN = "FORBIDDEN"
    BAD_USER_INPUT = "BAD_USER_INPUT"
    GRAPHQL_PARSE_FAILED = "GRAPHQL_PARSE_FAILED"
    GRAPHQL_VALIDATION_FAILED = "GRAPHQL_VALIDATION_FAILED"
    QUERY_TOO_COMPLEX = "QUERY_TOO_COMPLEX"
    RATE_LIMITED = "RATE_LIMITED"
    SERVICE_UNAVAILABLE = "SERVICE_UNAVAILABLE"
    INTERNAL_SERVER_ERROR = "INTERNAL_SERVER_ERROR"


class ApiError(GraphQLError):
    """A transport-level error with a code, raised from resolvers and permissions."""

    def __init__(self, code: ErrorCode, message: str, **extensions: Any) -> None:
        super().__init__(message, extensions={"code": code.value, **extensions})


def unauthenticated(reason: str = "missing") -> ApiError:
    messages = {
        "missing": "sign in first: send Authorization: Bearer <token>",
        "expired": "the token has expired: log in again",
        "invalid": "the token is invalid",
        "unknown_user": "the token's user no longer exists",
        "disabled": "this account is disabled",
    }
    return ApiError(ErrorCode.UNAUTHENTICATED, messages.get(reason, reason), reason=reason)


def forbidden() -> ApiError:
    return ApiError(ErrorCode.FORBIDDEN, "this operation needs the ADMIN role")


class ErrorCodes(SchemaExtension):
    """Gives each error a code, and replaces unexpected errors with a masked message that
    carries the request id (the full error is logged under the same id). Every error is
    rebuilt, so none leaves with its original exception (what MaskErrors does, here through
    its public hooks only): the result of an operation, and each result of a stream (a
    subscription's events)."""

    def __init__(self) -> None:
        self._streamed = False

    def on_operation(self) -> Iterator[None]:
        self._streamed = False
        yield
        if not self._streamed:  # a stream's results were coded one by one already
            self._code(self.execution_context.result)

    def on_stream_result(self, result: Any) -> Iterator[None]:
        self._streamed = True
        self._code(result)
        yield

    def _code(self, result: object) -> None:
        errors = getattr(result, "errors", None)
        if errors:
            result.errors = [self._classify(error) for error in errors]  # type: ignore[attr-defined]

    def _classify(self, error: GraphQLError) -> GraphQLError:
        original = error.original_error
        extensions = dict(error.extensions or {})
        if original is not None and (store := unavailable_store(original)):
            # A driver's own error for a store out of reach: answered as the domain's is.
            logger.warning("%s: %r", store, original)
            original = ServiceUnavailable(store)
        if isinstance(original, ApiError):
            extensions = {**(original.extensions or {}), **extensions}
        elif isinstance(original, ServiceUnavailable):
            return self._copy(
                error, original.message, {"code": ErrorCode.SERVICE_UNAVAILABLE.value}
            )
        elif isinstance(original, InvalidInput):
            return self._copy(
                error,
                f"{original.field}: {original.message}",
                {"code": ErrorCode.BAD_USER_INPUT.value, "field": original.field},
            )
        elif isinstance(original, MissingQueryError | CannotGetOperationTypeError):
            # No operation to run (an empty document, type definitions only, or an
            # operationName naming none of its operations): a 400 over HTTP, where the view
            # catches these first; over a WebSocket they arrive here.
            message = (
                "No GraphQL query found in the request"
                if isinstance(original, MissingQueryError)
                else original.as_http_error_reason()
            )
            return self._copy(error, message, {"code": ErrorCode.GRAPHQL_VALIDATION_FAILED.value})
        elif isinstance(original, ValueError | TypeError) and error.path is None:
            # A custom scalar refusing a literal or variable while the document is checked:
            # the client's input, not our bug.
            return self._copy(error, error.message, {"code": ErrorCode.BAD_USER_INPUT.value})
        elif original is not None and not isinstance(original, GraphQLError):
            request_id = current_request_id()
            logger.error(
                "unexpected error in %s (request %s)",
                ".".join(str(p) for p in error.path or []) or "operation",
                request_id,
                exc_info=original,
            )
            return self._copy(
                error,
                f"Internal server error (request id {request_id})",
                {"code": ErrorCode.INTERNAL_SERVER_ERROR.value, "requestId": request_id},
            )
        if "code" not in extensions:
            extensions["code"] = self._code_of(error).value
        return self._copy(error, error.message, extensions)

    @staticmethod
    def _code_of(error: GraphQLError) -> ErrorCode:
        if isinstance(error, GraphQLSyntaxError):
            # The parser's own resource limits (tokens, length, nesting) end this way.
            if parsing_aborted(error):
                return ErrorCode.QUERY_TOO_COMPLEX
            return ErrorCode.GRAPHQL_PARSE_FAILED
        if variable_coercion_failed(error):
            return ErrorCode.BAD_USER_INPUT
        if error.path is None:
            # graphql-core's own resource limits in validation (fragments nested past its
            # limit) end this way.
            if validation_aborted(error):
                return ErrorCode.QUERY_TOO_COMPLEX
            return ErrorCode.GRAPHQL_VALIDATION_FAILED
        return ErrorCode.INTERNAL_SERVER_ERROR

    @staticmethod
    def _copy(error: GraphQLError, message: str, extensions: dict[str, Any]) -> GraphQLError:
        return GraphQLError(
            message,
            nodes=error.nodes,
            source=error.source,
            positions=error.positions,
            path=error.path,
            original_error=None,
            extensions=extensions,
        )
