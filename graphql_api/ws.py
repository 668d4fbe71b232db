"""GraphQL over WebSocket (graphql-transport-ws) under the same limits as over HTTP.

Over HTTP every request passes `IpRateLimit`; over one WebSocket only the handshake did, and
then any number of operations could follow. Here each `subscribe` message is counted in the
same per-address window as an HTTP request (one budget whatever the transport), and the
operations in flight on one socket are bounded by WS_MAX_OPERATIONS. The query cost budget
and the per-user windows need nothing here: they are a schema extension and a field
extension, which run for every operation whichever way it came.

A refused operation gets an `error` message with RATE_LIMITED and `retryAfter`, and the
socket stays open for the operations it already runs (a storefront's live stock).
A client that keeps sending regardless is closed with 4429. Any frame that is not a
well-formed message of the protocol closes the socket with 4400, as Strawberry already
does for frames that are not JSON.
"""

import logging
from typing import Any, cast

from graphql import GraphQLFormattedError
from starlette import websockets as starlette_websockets
from strawberry.http.exceptions import WebSocketDisconnected
from strawberry.subscriptions.protocols.graphql_transport_ws.handlers import (
    BaseGraphQLTransportWSHandler,
)
from strawberry.subscriptions.protocols.graphql_transport_ws.types import (
    ErrorMessage,
    Message,
    SubscribeMessage,
)

from core.request_id import current_request_id
from graphql_api.client_address import remembered
from graphql_api.context import Context
from graphql_api.errors import ApiError, ErrorCode
from graphql_api.persisted import PersistedQueries, PersistedQueryRefused
from graphql_api.ratelimit import address_window, refusal_message
from telemetry import RATE_LIMITED

logger = logging.getLogger("flashsale.ws")

CLOSE_BAD_MESSAGE = 4400
CLOSE_TOO_MANY_REFUSALS = 4429
REFUSALS_BEFORE_CLOSE = 10
"""Refused operations in a row (none let through in between) after which the socket is
closed: a client that reads its errors waits `retryAfter` long before that."""
MAX_ID_BYTES = 64
"""The longest operation id (UTF-8): Strawberry quotes an id in a close reason, which may
hold 123 bytes, and a longer reason dropped the socket with no close code. Clients use
counters or UUIDs (36)."""
CLIENT_MESSAGES = frozenset({"connection_init", "ping", "pong", "subscribe", "complete"})
IN_FLIGHT_LIMIT = "ws_operations"
"""The `limit` label of flashsale_rate_limited_total for operations refused by the bound
on operations in flight (refusals by the address window are counted as `ip`, as over HTTP)."""


def malformed(message: object) -> str | None:
    """Why `message` is not a message of the protocol that the handler can act on, or None.
    Only what Strawberry would trip over is checked: anything else it refuses by itself."""
    if not isinstance(message, dict):
        return "WebSocket message must be a JSON object"
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in CLIENT_MESSAGES:
        # Not quoted back: Strawberry's reason quoted the type, however long.
        return "unknown message type"
    if kind in ("subscribe", "complete"):
        operation = message.get("id")
        if not isinstance(operation, str):
            return f"{kind} needs an id that is a string"
        if len(operation.encode()) > MAX_ID_BYTES:
            return f"{kind}'s id is longer than {MAX_ID_BYTES} bytes"
    if kind != "subscribe":
        return None
    payload = message.get("payload")
    if not isinstance(payload, dict):
        return "subscribe needs a payload object"
    query, extensions = payload.get("query"), payload.get("extensions")
    if not isinstance(query, str) and not (query is None and isinstance(extensions, dict)):
        return "subscribe needs a query string (or a persisted query's hash in extensions)"
    if not isinstance(extensions, dict | None):
        return "subscribe's extensions must be an object"
    if not isinstance(payload.get("variables", None), dict | None):
        return "subscribe's variables must be an object"
    if not isinstance(payload.get("operationName", None), str | None):
        return "subscribe's operationName must be a string"
    return None


class LimitedTransportWSHandler(BaseGraphQLTransportWSHandler[Context, None]):
    """Strawberry's graphql-transport-ws handler, counting operations against the caller's
    limits before they start."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.max_operations = self.context.services.settings.ws_max_operations
        # Bounded in handle_subscribe, with a coded error; Strawberry's own check has none.
        self.max_subscriptions_per_connection = None
        self.refusals_in_a_row = 0

    async def handle_message(self, message: Message) -> None:
        reason = malformed(message)
        if reason is not None:
            await self.handle_invalid_message(reason)
            return
        await super().handle_message(message)

    async def handle_task_exception(self, error: Exception) -> None:
        """A client that went away while its answer was being sent is no error of ours:
        one INFO line, as over HTTP (Strawberry logged ERROR with a traceback). Starlette
        says so its own way once the socket is closing, and Strawberry does not translate
        that one."""
        if isinstance(error, WebSocketDisconnected | starlette_websockets.WebSocketDisconnected):
            logger.info(
                "WebSocket client went away before its answer was sent (request %s)",
                current_request_id(),
            )
            return
        await super().handle_task_exception(error)

    async def handle_subscribe(self, message: SubscribeMessage) -> None:
        if not self.connection_acknowledged or message["id"] in self.operations:
            await super().handle_subscribe(message)  # closes the socket, as the protocol says
            return
        refusal = await self._refusal()
        if refusal is None:
            self.refusals_in_a_row = 0
            if await self._resolve_persisted(message):
                await super().handle_subscribe(message)
            return
        await self.send_message(ErrorMessage(id=message["id"], type="error", payload=[refusal]))
        self.refusals_in_a_row += 1
        if self.refusals_in_a_row >= REFUSALS_BEFORE_CLOSE:
            await self.websocket.close(
                code=CLOSE_TOO_MANY_REFUSALS,
                reason=f"{self.refusals_in_a_row} refused operations in a row",
            )

    async def _resolve_persisted(self, message: SubscribeMessage) -> bool:
        """The document by its hash (automatic persisted queries; in trusted-documents mode
        only the manifest's run, whichever way they came). Documents are registered over
        HTTP only, where their validation is known first. False: refused, and answered."""
        payload = message["payload"]
        persisted = cast("PersistedQueries", getattr(self.view, "persisted"))  # noqa: B009
        try:
            resolved = await persisted.resolve(
                self.context.services.redis, payload.get("query"), payload.get("extensions")
            )
        except PersistedQueryRefused as exc:
            refusal: GraphQLFormattedError = {
                "message": exc.message,
                "extensions": {"code": exc.code.value, "requestId": current_request_id()},
            }
            await self.send_message(ErrorMessage(id=message["id"], type="error", payload=[refusal]))
            return False
        if resolved.query is not None:
            payload["query"] = resolved.query
        return True

    async def _refusal(self) -> GraphQLFormattedError | None:
        """The error that refuses the next operation, or None to let it start. The bound on
        operations in flight is checked first, so that a refused one uses no quota."""
        if len(self.operations) >= self.max_operations:
            RATE_LIMITED.labels(IN_FLIGHT_LIMIT).inc()
            return _formatted(
                f"at most {self.max_operations} operations in flight on one WebSocket: "
                "send this one when one of yours has completed",
                retryAfter=1,
                maxOperations=self.max_operations,
            )
        connection = self.context.connection
        assert connection is not None
        decision = await address_window(
            self.context.services.rate_limits, remembered(connection.scope)
        )
        if decision is None or decision.allowed:
            return None
        RATE_LIMITED.labels("ip").inc()
        return _formatted(refusal_message(decision), retryAfter=decision.retry_after)


def _formatted(message: str, **extensions: Any) -> GraphQLFormattedError:
    error = ApiError(ErrorCode.RATE_LIMITED, message, **extensions, requestId=current_request_id())
    return error.formatted
