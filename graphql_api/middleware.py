"""ASGI middleware: request ids, a body size cap, and a last-resort JSON 500."""

import json
import logging
from collections.abc import Sequence

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.request_id import adopt_request_id

logger = logging.getLogger("flashsale.http")


class _BodyTooLarge(Exception):
    pass


def json_error(
    status: int,
    code: str,
    message: str,
    *,
    headers: Sequence[tuple[bytes, bytes]] = (),
    response: str = "http.response",
    **extensions: object,
) -> tuple[Message, Message]:
    """The two ASGI messages of a JSON error answered by middleware, in the API's error
    shape. `response` is "websocket.http.response" to refuse a WebSocket handshake."""
    body = json.dumps(
        {"errors": [{"message": message, "extensions": {"code": code, **extensions}}]}
    ).encode()
    start: Message = {
        "type": f"{response}.start",
        "status": status,
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            *headers,
        ],
    }
    return start, {"type": f"{response}.body", "body": body}


class RequestGuard:
    """Tags each request with an X-Request-ID, refuses bodies over `max_bytes` with 413
    (before the application reads them whole), and turns any unhandled exception into a
    JSON 500 that carries the request id instead of a traceback. A client that hangs up
    before its body has arrived is no error of ours: one INFO line, and no answer."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        request_id = adopt_request_id(headers.get(b"x-request-id", b"").decode("latin-1"))
        if scope["type"] == "websocket":
            await self.app(scope, receive, send)
            return

        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await self._refuse(send, request_id)
            return

        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise _BodyTooLarge
            return message

        async def tagging_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [
                    *message.get("headers", []),
                    (b"x-request-id", request_id.encode()),
                ]
            await send(message)

        try:
            await self.app(scope, counting_receive, tagging_send)
        except _BodyTooLarge:
            if not started:
                await self._refuse(send, request_id)
        except ClientDisconnect:
            logger.info(
                "client disconnected before its request body arrived (%s %s, request %s)",
                scope["method"],
                scope["path"],
                request_id,
            )
        except Exception:
            logger.exception("unhandled error (request %s)", request_id)
            if not started:
                for message in json_error(
                    500,
                    "INTERNAL_SERVER_ERROR",
                    f"Internal server error (request id {request_id})",
                    headers=[(b"x-request-id", request_id.encode())],
                    requestId=request_id,
                ):
                    await send(message)

    async def _refuse(self, send: Send, request_id: str) -> None:
        for message in json_error(
            413,
            "PAYLOAD_TOO_LARGE",
            f"request body is over {self.max_bytes} bytes",
            headers=[(b"x-request-id", request_id.encode())],
            requestId=request_id,
        ):
            await send(message)
