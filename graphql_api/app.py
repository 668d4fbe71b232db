"""The FastAPI application: /graphql (HTTP and WebSocket), GraphiQL assets, the storefront
and admin pages, health and metrics."""

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.requests import HTTPConnection
from starlette.routing import Route, WebSocketRoute
from strawberry.subscriptions import GRAPHQL_TRANSPORT_WS_PROTOCOL

from core.settings import Settings
from graphql_api.graphiql import STATIC_DIR
from graphql_api.guards import QueryGuards
from graphql_api.http import GraphQLView
from graphql_api.middleware import RequestGuard
from graphql_api.pages import add_pages
from graphql_api.persisted import PersistedQueries
from graphql_api.ratelimit import IpRateLimit
from graphql_api.schema import build_schema
from services import Services
from telemetry import exposition

logger = logging.getLogger("flashsale")


def create_app(
    settings: Settings,
    services: Services | Callable[[], AbstractAsyncContextManager[Services]],
) -> FastAPI:
    """The application on the services it is handed: built ones (the caller closes them),
    or a context manager that opens them at start-up and closes them at shutdown (see
    `services.running_services`)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if isinstance(services, Services):
            yield
            return
        async with services() as running:
            app.state.services = running
            yield

    # FastAPI's own OpenTelemetry hooks are off: /metrics and the JSON logs are the
    # service's telemetry, and with the hooks on every request looks the providers up in
    # the environment (about 1% of a reserve's time in a py-spy profile).
    app = FastAPI(
        title="flashsale",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    if isinstance(services, Services):
        app.state.services = services

    view = GraphQLView(
        schema=build_schema(
            QueryGuards.from_settings(settings), introspection=settings.introspection_enabled
        ),
        graphql_ide="graphiql" if settings.graphiql_enabled else None,
        allowed_origins=settings.allowed_origins,
        # Not the older graphql-ws protocol: one protocol to keep within the limits (see
        # graphql_api/ws.py); a client asking for another is closed with 4406.
        subscription_protocols=(GRAPHQL_TRANSPORT_WS_PROTOCOL,),
        persisted=PersistedQueries.from_settings(settings),
    )
    app.router.routes.append(Route("/graphql", view, methods=["GET", "POST"]))
    app.router.routes.append(WebSocketRoute("/graphql", view))
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    add_pages(app)

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        body, content_type = exposition()
        return Response(body, media_type=content_type)

    @app.get("/readyz", include_in_schema=False)
    async def readyz(connection: HTTPConnection) -> JSONResponse:
        checks = await connection.app.state.services.readiness()
        ready = all(checks.values())
        return JSONResponse(
            {"status": "ready" if ready else "unavailable", "checks": checks},
            status_code=200 if ready else 503,
        )

    # Innermost first: CORS wraps the rate limit (so a 429 is readable by the browser and
    # preflights are not counted); the request guard wraps everything.
    app.add_middleware(IpRateLimit, trusted_proxies=settings.trusted_proxies)
    if settings.allowed_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.allowed_origins,
            allow_methods=["GET", "POST"],
            allow_headers=["authorization", "content-type", "x-request-id"],
            expose_headers=["x-request-id", "retry-after", "ratelimit", "ratelimit-policy"],
        )
    app.add_middleware(RequestGuard, max_bytes=settings.max_request_bytes)
    return app
