"""A small graphql-transport-ws client for the tests (over a real socket)."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.typing import Subprotocol

RECEIVE_TIMEOUT = 10.0  # a bound so a broken server fails the test instead of hanging it


class Session:
    def __init__(self, socket: ClientConnection) -> None:
        self.socket = socket
        self._ids = 0

    async def subscribe(self, query: str, variables: dict[str, Any] | None = None) -> str:
        self._ids += 1
        operation = str(self._ids)
        await self.socket.send(
            json.dumps(
                {
                    "id": operation,
                    "type": "subscribe",
                    "payload": {"query": query, "variables": variables or {}},
                }
            )
        )
        return operation

    async def receive(self) -> dict[str, Any]:
        """The next message other than ping/pong."""
        while True:
            raw = await asyncio.wait_for(self.socket.recv(), RECEIVE_TIMEOUT)
            message: dict[str, Any] = json.loads(raw)
            if message["type"] not in ("ping", "pong"):
                return message

    async def next_data(self) -> dict[str, Any]:
        message = await self.receive()
        assert message["type"] == "next", message
        assert "errors" not in message["payload"], message
        data: dict[str, Any] = message["payload"]["data"]
        return data


def ws_url(url: str) -> str:
    """The WebSocket address of /graphql on a server at http `url`."""
    return url.replace("http://", "ws://") + "/graphql"


@asynccontextmanager
async def session(url: str, token: str | None = None, **headers: str) -> AsyncIterator[Session]:
    async with connect(
        ws_url(url),
        subprotocols=[Subprotocol("graphql-transport-ws")],
        additional_headers=headers or None,
    ) as socket:
        payload = {"Authorization": f"Bearer {token}"} if token else {}
        await socket.send(json.dumps({"type": "connection_init", "payload": payload}))
        ack = json.loads(await asyncio.wait_for(socket.recv(), RECEIVE_TIMEOUT))
        assert ack["type"] == "connection_ack", ack
        yield Session(socket)
