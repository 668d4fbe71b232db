"""The per-address limit on the API (`/graphql` over HTTP, and WebSocket handshakes), as ASGI
middleware. Each operation sent over an open WebSocket is counted in the same window, by
`address_window` (see graphql_api.ws).

An HTTP request is counted once, in one of two places. A GraphQL operation that gets as far
as the query guard is counted there, in the same round trip to Redis as its cost and, for
reserve and checkout, its user's window (`AddressCount`, claimed by graphql_api.guards):
one round trip for all of a request's limits instead of one each. Any other request (a
page, a body that is not JSON, a document that does not parse or validate) is counted here
just before its answer starts. Either way the answer carries the window's fields, and a
request over the quota is answered 429 by this middleware, in place of whatever the
application answered: no resolver has run for it (the guard refuses the operation first),
although its document was read and checked before it was counted.

Every answer carries the IETF RateLimit / RateLimit-Policy fields, so clients can pace
themselves before they are refused; a refused request gets 429 with Retry-After. Nothing
else is counted: the pages and their static files cost a browser several requests per load
and nothing in Redis or MongoDB, and a load balancer's health probes must not use up, or be
refused by, a quota.
"""

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.request_id import current_request_id
from graphql_api.client_address import Network, client_address, rate_key, remember
from graphql_api.middleware import json_error
from ratelimit import Count, RateLimits, RateLimitUnavailable, WindowDecision
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
_ADDRESS_COUNT = "address_count"


def address_limit(limits: RateLimits, address: str) -> Count[WindowDecision]:
    """One request from `address` (as `client_address` found it) in its window, to count
    with the request's other limits. Its hash tag is the one an anonymous caller's cost
    budget has (Context.rate_identity), so on a cluster the two are counted together."""
    key = rate_key(address)
    return limits.per_ip.count(key, slot=f"ip:{key}")


def unavailable(exc: RateLimitUnavailable) -> None:
    """The address window could not be counted: the request goes through (as explained on
    IpRateLimit), said in the log at most every few seconds."""
    if _log_unavailable_now():
        logger.warning("rate limits unavailable, letting requests through: %s", exc)


async def address_window(limits: RateLimits, address: str) -> WindowDecision | None:
    """Count one request from `address` in its window, alone; None when nothing was
    counted: the limits are off, or Redis does not answer."""
    if not limits.enabled:
        return None
    count = address_limit(limits, address)
    try:
        return (await limits.count([count])).of(count)
    except RateLimitUnavailable as exc:
        unavailable(exc)
        return None


@dataclass
class AddressCount:
    """An HTTP request's count in its address window, made once: by the query guard with
    the request's other limits, or by IpRateLimit as the answer starts."""

    address: str
    made: bool = False
    decision: WindowDecision | None = None
    """None when nothing was counted (Redis did not answer)."""

    def settle(self, decision: WindowDecision | None) -> None:
        self.made = True
        self.decision = decision

    async def make(self, limits: RateLimits) -> WindowDecision | None:
        if not self.made:
            self.settle(await address_window(limits, self.address))
        return self.decision


def pending_address_count(scope: Scope) -> AddressCount | None:
    """The address count this HTTP request still owes, for the query guard to make with
    the operation's other limits; None once made, and on a WebSocket (whose handshake and
    operations are counted where they arrive)."""
    count = (scope.get("state") or {}).get(_ADDRESS_COUNT)
    return count if isinstance(count, AddressCount) and not count.made else None


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
        if scope["path"] not in LIMITED_PATHS or not limits.enabled:
            await self.app(scope, receive, send)
        elif scope["type"] == "websocket":
            await self._handshake(scope, receive, send, limits, address)
        else:
            await self._request(scope, receive, send, limits, AddressCount(address))

    async def _handshake(
        self, scope: Scope, receive: Receive, send: Send, limits: RateLimits, address: str
    ) -> None:
        decision = await address_window(limits, address)
        if decision is not None and not decision.allowed:
            await self._refuse(scope, send, decision)
        else:
            await self.app(scope, receive, send)

    async def _request(
        self, scope: Scope, receive: Receive, send: Send, limits: RateLimits, count: AddressCount
    ) -> None:
        scope.setdefault("state", {})[_ADDRESS_COUNT] = count
        refused = False

        async def send_counted(message: Message) -> None:
            nonlocal refused
            if message["type"] == "http.response.start":
                decision = await count.make(limits)
                if decision is not None and not decision.allowed:
                    refused = True
                    await self._refuse(scope, send, decision)
                    return
                if decision is not None:
                    message["headers"] = [
                        *message.get("headers", []),
                        *rate_limit_headers(decision),
                    ]
            elif refused:
                return  # the application's answer, replaced by the 429
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        finally:
            # A request that ended without an answer (an error, a client gone) counts too.
            await count.make(limits)

    async def _refuse(
        self,
        scope: Scope,
        send: Send,
        decision: WindowDecision,
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
            headers=rate_limit_headers(decision),
            response=response,
            retryAfter=decision.retry_after,
            requestId=current_request_id(),
        ):
            await send(message)
