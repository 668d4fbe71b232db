"""The per-address limit on the API (`/graphql` over HTTP, and WebSocket handshakes), as ASGI
middleware. Each operation sent over an open WebSocket is counted in the same window, by
`address_window` (see graphql_api.ws).

Every answer carries the IETF RateLimit / RateLimit-Policy fields, so clients can pace
themselves before they are refused; a refused request gets 429 with Retry-After. Nothing
else is counted: the pages and their static files cost a browser several requests per load
and nothing in Redis or MongoDB, and a load balancer's health probes must not use up, or be
refused by, a quota.
"""

import logging
import time
from collections.abc import Sequence

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.request_id import current_request_id
from graphql_api.client_address import Network, client_address, rate_key, remember
from graphql_api.middleware import json_error
from ratelimit import RateLimits, RateLimitUnavailable, WindowDecision
from telemetry import RATE_LIMITED

logger = logging.getLogger("flashsale.ratelimit")

LIMITED_PATHS = frozenset({"/graphql"})
POLICY = "ip"
_UNAVAILABLE_LOG_INTERVAL_SECONDS = 10.0


class _EveryFewSeconds:
    """Says yes at most once per interval: Redis away must not log on every request."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self.last = -interval

    def __call__(self) -> bool:
        now = time.monotonic()
        if now - self.last < self.interval:
            return False
        self.last = now
        return True


_log_unavailable_now = _EveryFewSeconds(_UNAVAILABLE_LOG_INTERVAL_SECONDS)


async def address_window(limits: RateLimits, address: str) -> WindowDecision | None:
    """Count one request from `address` (as `client_address` found it) in its window; None
    when nothing was counted: the limits are off, or Redis does not answer (then the
    request goes through, as explained on IpRateLimit)."""
    if not limits.enabled:
        return None
    try:
        return await limits.per_ip.hit(rate_key(address))
    except RateLimitUnavailable as exc:
        if _log_unavailable_now():
            logger.warning("rate limits unavailable, letting requests through: %s", exc)
        return None


def refusal_message(decision: WindowDecision) -> str:
    return (
        f"too many requests from this address (at most {decision.limit} per "
        f"{decision.window_seconds} s): retry in {decision.retry_after} s"
    )


def rate_limit_headers(decision: WindowDecision) -> list[tuple[bytes, bytes]]:
    headers = [
        (b"ratelimit-policy", f'"{POLICY}";q={decision.limit};w={decision.window_seconds}'),
        (b"ratelimit", f'"{POLICY}";r={decision.remaining};t={decision.reset_after}'),
    ]
    if not decision.allowed:
        headers.append((b"retry-after", str(decision.retry_after)))
    return [(name, value.encode()) for name, value in headers]


class IpRateLimit:
    """Counts each request against its client address's sliding window (shared by every
    process through Redis). If Redis does not answer, requests go through: reads need no
    quota to be safe, and every write is refused further in by the checks that need Redis
    (the cost budget, the per-user limit, the stock itself)."""

    def __init__(self, app: ASGIApp, trusted_proxies: Sequence[Network]) -> None:
        self.app = app
        self.trusted_proxies = tuple(trusted_proxies)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        address = client_address(scope, self.trusted_proxies)
        remember(scope, address)
        limits: RateLimits = scope["app"].state.services.rate_limits
        decision = None
        if scope["path"] in LIMITED_PATHS:
            decision = await address_window(limits, address)
        if decision is None:
            await self.app(scope, receive, send)
            return
        headers = rate_limit_headers(decision)
        if not decision.allowed:
            await self._refuse(scope, send, decision, headers)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *headers]
            await send(message)

        await self.app(scope, receive, send_with_headers)

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        decision: WindowDecision,
        headers: list[tuple[bytes, bytes]],
    ) -> None:
        RATE_LIMITED.labels("ip").inc()
        response = "http.response"
        if scope["type"] == "websocket":
            if "websocket.http.response" not in scope.get("extensions", {}):
                await send({"type": "websocket.close", "code": 1008})
                return
            response = "websocket.http.response"
        for message in json_error(
            429,
            "RATE_LIMITED",
            refusal_message(decision),
            headers=headers,
            response=response,
            retryAfter=decision.retry_after,
            requestId=current_request_id(),
        ):
            await send(message)
