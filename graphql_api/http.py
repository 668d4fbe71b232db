"""The GraphQL endpoint, following the GraphQL-over-HTTP specification.

Strawberry answers only `application/json` and reports transport errors as plain text. This
view adds `application/graphql-response+json` (with 4xx statuses and no `data` for requests
that fail before execution), 406 for unacceptable Accept headers, and JSON errors with a code
for every refusal: strict JSON bodies (no NaN, no numbers a double or Python's int
conversion cannot hold, no lone surrogates, at most 64 deep), and operation types by
transport (queries over GET, queries and mutations over POST, subscriptions only over the
WebSocket).
"""

from collections.abc import Mapping
from json import JSONDecodeError
from typing import Any

from cross_web import AsyncHTTPRequestAdapter, HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.types import Receive, Scope, Send
from starlette.websockets import WebSocket
from strawberry.asgi import GraphQL
from strawberry.exceptions import ConnectionRejectionError, MissingQueryError
from strawberry.http import GraphQLHTTPResponse, GraphQLRequestData
from strawberry.http.types import QueryParams
from strawberry.schema.exceptions import CannotGetOperationTypeError, InvalidOperationTypeError
from strawberry.types import ExecutionResult
from strawberry.types.execution import PreExecutionError
from strawberry.types.graphql import OperationType
from strawberry.types.unset import UnsetType

from graphql_api.context import Context
from graphql_api.errors import ApiError
from graphql_api.graphiql import GRAPHIQL_HTML
from graphql_api.json_body import decode_json_strictly
from graphql_api.persisted import PersistedQueries, PersistedQueryRefused
from graphql_api.ws import LimitedTransportWSHandler
from services import Services

GRAPHQL_RESPONSE_JSON = "application/graphql-response+json"
APPLICATION_JSON = "application/json"
_MEDIA_ATTRIBUTE = "flashsale_media_type"


def negotiate(accept: str | None) -> str | None:
    """The response media type for an Accept header, or None when nothing fits (406).
    A missing Accept header means application/json, as the specification asks."""
    if not accept or not accept.strip():
        return APPLICATION_JSON
    best: tuple[float, int, str] | None = None
    for position, part in enumerate(accept.split(",")):
        media, *params = (p.strip() for p in part.split(";"))
        quality = 1.0
        for param in params:
            key, _, value = param.partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        media = media.lower()
        if media in (GRAPHQL_RESPONSE_JSON, APPLICATION_JSON):
            chosen = media
        elif media in ("*/*", "application/*"):
            chosen = APPLICATION_JSON
        else:
            continue
        if quality > 0 and (best is None or (quality, -position) > (best[0], best[1])):
            best = (quality, -position, chosen)
    return best[2] if best else None


_SERVED_OPERATIONS = {
    "GET": frozenset({OperationType.QUERY}),
    "POST": frozenset({OperationType.QUERY, OperationType.MUTATION}),
}
SUBSCRIPTIONS_NEED_A_WEBSOCKET = (
    "subscriptions are served over a WebSocket at /graphql (subprotocol graphql-transport-ws), "
    "not over HTTP"
)


def error_response(status: int, code: str, message: str, **headers: str) -> JSONResponse:
    return JSONResponse(
        {"errors": [{"message": message, "extensions": {"code": code}}]},
        status_code=status,
        headers=headers or None,
    )


_HTTP_ERROR_CODES = {400: "BAD_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED"}


def _is_request_error(response: Mapping[str, Any]) -> bool:
    """True when the request failed before execution (parse, validation, variables)."""
    errors: list[dict[str, Any]] = response.get("errors") or []
    return response.get("data") is None and bool(errors) and all(not e.get("path") for e in errors)


def _refused_retry_after(response: object) -> int | None:
    """When the whole operation was refused for its rate (before it ran), the seconds to
    wait: the answer is then a 429 with Retry-After, like any refused HTTP request."""
    if not isinstance(response, Mapping) or response.get("data") is not None:
        return None
    for error in response.get("errors") or []:
        extensions = error.get("extensions") or {}
        if not error.get("path") and extensions.get("code") == "RATE_LIMITED":
            return int(extensions.get("retryAfter", 1))
    return None


class GraphQLView(GraphQL[Context, None]):
    graphql_transport_ws_handler_class = LimitedTransportWSHandler

    def __init__(self, *args: Any, persisted: PersistedQueries | None = None, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.persisted = persisted or PersistedQueries()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        request = Request(scope, receive)
        response: Response
        if self._wants_ide(request):
            response = await self.render_graphql_ide(request)
        elif (media := negotiate(request.headers.get("accept"))) is None:
            response = error_response(
                406, "NOT_ACCEPTABLE", f"accept {GRAPHQL_RESPONSE_JSON} or {APPLICATION_JSON}"
            )
        else:
            scope.setdefault("state", {})[_MEDIA_ATTRIBUTE] = media
            try:
                response = await self.run(request)
            except HTTPException as exc:
                code = _HTTP_ERROR_CODES.get(exc.status_code, "BAD_REQUEST")
                headers = {"Allow": "POST"} if exc.status_code == 405 else {}
                response = error_response(exc.status_code, code, exc.reason, **headers)
            except PersistedQueryRefused as exc:
                response = error_response(exc.status, exc.code, exc.message, **exc.headers)
        await response(scope, receive, send)

    def parse_json(self, data: str | bytes) -> Any:
        parsed = decode_json_strictly(data, "request body")
        # Strawberry assumes an object (or a list of them, for batches) and fails with a 500
        # on anything else.
        items = parsed if isinstance(parsed, list) else [parsed]
        if not all(isinstance(item, dict) for item in items):
            raise HTTPException(400, "The request body must be a JSON object")
        return parsed

    def decode_json(self, data: str | bytes) -> object:
        """A WebSocket frame, read as strictly as a request body. Strawberry closes the
        socket with 4400 on a JSONDecodeError and on nothing else: Python's own failures on
        deep nesting or long digit strings dropped it with no close code."""
        try:
            return decode_json_strictly(data, "WebSocket message")
        except HTTPException as exc:
            text = data if isinstance(data, str) else data.decode(errors="replace")
            raise JSONDecodeError(exc.reason, text, 0) from None

    def parse_query_params(self, params: QueryParams) -> dict[str, Any]:
        # Strawberry decodes these with parse_json, whose object check speaks of the body;
        # its own checks then say what is wrong with `variables` or `extensions`.
        parsed: dict[str, Any] = dict(params)
        for name in ("variables", "extensions"):
            if parsed.get(name):
                parsed[name] = decode_json_strictly(parsed[name], f"`{name}`")
        return parsed

    async def execute_single(
        self,
        request: Request,
        request_adapter: AsyncHTTPRequestAdapter,
        sub_response: Response,
        context: Context,
        root_value: None,
        request_data: GraphQLRequestData,
    ) -> ExecutionResult:
        """Strawberry's, with the operation types each method serves here: queries over
        GET, queries and mutations over POST. Strawberry would also run a subscription over
        HTTP (it streams them only with a streaming protocol configured, which this view
        has not) and fail on the async generator its resolver returns."""
        method = request_adapter.method
        allowed = _SERVED_OPERATIONS[method]
        if method == "GET" and not self.allow_queries_via_get:
            allowed = frozenset()
        if not isinstance(request_data.operation_name, str | None):
            raise HTTPException(400, "The GraphQL operation's `operationName` must be a string")
        redis = context.services.redis
        persisted = await self.persisted.resolve(redis, request_data.query, request_data.extensions)
        try:
            result = await self.schema.execute(
                persisted.query,
                root_value=root_value,
                variable_values=request_data.variables,
                context_value=context,
                operation_name=request_data.operation_name,
                allowed_operation_types=allowed,
                operation_extensions=request_data.extensions,
            )
        except CannotGetOperationTypeError as exc:
            raise HTTPException(400, exc.as_http_error_reason()) from exc
        except InvalidOperationTypeError as exc:
            if exc.operation_type is OperationType.SUBSCRIPTION:
                raise HTTPException(400, SUBSCRIPTIONS_NEED_A_WEBSOCKET) from exc
            # A mutation sent over GET: the specification asks for 405.
            raise HTTPException(405, exc.as_http_error_reason(method)) from exc
        except MissingQueryError as exc:
            raise HTTPException(400, "No GraphQL query found in the request") from exc
        # Registered once parsed and validated (Apollo's order): refused documents never are.
        if persisted.register and persisted.query and not isinstance(result, PreExecutionError):
            await self.persisted.register(redis, persisted.register, persisted.query)
        return result

    def should_render_graphql_ide(self, request: Any) -> bool:
        # Decided in __call__ (_wants_ide). Strawberry's own test would also answer a GET
        # with only a persisted query's hash and Accept: */* (curl, a CDN) with the page.
        return False

    def _wants_ide(self, request: Request) -> bool:
        return (
            self.graphql_ide is not None
            and request.method == "GET"
            and "query" not in request.query_params
            and "extensions" not in request.query_params
            and "text/html" in request.headers.get("accept", "")
        )

    async def render_graphql_ide(self, request: Request) -> HTMLResponse:
        return HTMLResponse(GRAPHIQL_HTML)

    async def get_context(self, request: Request | WebSocket, response: Any) -> Context:
        # The services are built in the app's lifespan, after this view is created.
        services: Services = request.app.state.services
        return Context(
            services=services,
            connection=request,
            authorization=request.headers.get("authorization"),
        )

    async def on_ws_connect(self, context: Context) -> UnsetType | dict[str, object] | None:
        """graphql-transport-ws carries the token in `connection_init`'s payload
        (`{"Authorization": "Bearer <token>"}`). Without one the connection is anonymous
        (stock is public); a bad one closes it with 4403, as a bad header gets
        UNAUTHENTICATED over HTTP."""
        params = context.connection_params or {}
        authorization = next((v for k, v in params.items() if k.lower() == "authorization"), None)
        if authorization is not None:
            if not isinstance(authorization, str):
                raise ConnectionRejectionError({"reason": "Authorization must be a string"})
            context.authorization = authorization
            try:
                _ = context.claims
            except ApiError as exc:
                raise ConnectionRejectionError({"reason": exc.message}) from None
        return await super().on_ws_connect(context)

    async def get_sub_response(self, request: Request | WebSocket) -> Response:
        sub_response = await super().get_sub_response(request)
        media = request.scope.get("state", {}).get(_MEDIA_ATTRIBUTE, APPLICATION_JSON)
        sub_response.media_type = media
        return sub_response

    def create_response(
        self,
        response_data: GraphQLHTTPResponse | list[GraphQLHTTPResponse],
        sub_response: Response,
    ) -> Response:
        media = sub_response.media_type or APPLICATION_JSON
        status = sub_response.status_code or 200
        body: object = response_data
        retry_after = _refused_retry_after(response_data)
        if retry_after is not None:
            status = 429
            sub_response.headers["Retry-After"] = str(retry_after)
        elif (
            media == GRAPHQL_RESPONSE_JSON
            and isinstance(response_data, dict)
            and _is_request_error(response_data)
        ):
            body = {k: v for k, v in response_data.items() if k != "data"}
            status = 400
        response = Response(
            self.encode_json(body),
            status_code=status,
            media_type=media,
        )
        response.headers.raw.extend(
            (k, v) for k, v in sub_response.headers.raw if k.lower() != b"content-type"
        )
        return response
