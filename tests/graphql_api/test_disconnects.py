"""Clients that go away mid-request, against a real server process over raw sockets."""

import asyncio
import json
import socket
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.polling import wait_until
from tests.processes import ServerProcess, running, shared_env
from tests.ws import session

LOG_TIMEOUT = 10.0


@pytest.fixture(scope="module")
def server(servers: dict[str, str], settings: Any) -> Iterator[ServerProcess]:
    env = shared_env(servers, settings.mongodb_db, LOG_LEVEL="INFO", LOG_FORMAT="text")
    with running(env) as (process,):
        yield process


def _lines_naming(server: ServerProcess, request_id: str) -> list[str]:
    """The server's log lines about `request_id`, once there are any (within a deadline)."""

    def found() -> list[str] | None:
        lines = server.output().splitlines()
        for index, line in enumerate(lines):
            if request_id in line:
                return lines[index:]  # what follows the line too: a traceback would be there
        return None

    return wait_until(
        found,
        within=LOG_TIMEOUT,
        every=0.05,
        failure=lambda: f"nothing logged about {request_id}:\n{server.output()[-5_000:]}",
    )


def test_a_client_gone_mid_body_is_one_info_line(server: ServerProcess) -> None:
    request_id = f"gone-{uuid.uuid4().hex[:12]}"
    head = (
        "POST /graphql HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        "Content-Type: application/json\r\n"
        "Content-Length: 1000\r\n"
        f"X-Request-ID: {request_id}\r\n"
        "\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(head.encode() + b'{"query":')  # 10 of the 1,000 bytes promised

    lines = _lines_naming(server, request_id)

    assert " INFO " in lines[0], lines
    assert "disconnected" in lines[0], lines
    later = "\n".join(lines)
    assert "Traceback" not in later, later
    assert " ERROR " not in later, later
    assert httpx.get(f"{server.url}/healthz").json() == {"status": "ok"}


def test_a_client_that_stays_gets_its_answer(server: ServerProcess) -> None:
    """The same request sent whole is answered: the log line above is about the client."""
    body = b'{"query": "{ __typename }"}'
    head = (
        "POST /graphql HTTP/1.1\r\n"
        f"Host: 127.0.0.1:{server.port}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n"
        "Connection: close\r\n"
        "\r\n"
    )
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as raw:
        raw.sendall(head.encode() + body)
        answer = b""
        while chunk := raw.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 200"), answer
    assert b'"__typename":"Query"' in answer, answer


def test_a_websocket_client_gone_before_its_answers_is_one_info_line(
    server: ServerProcess,
) -> None:
    """Answers sent to a socket the client has just dropped (20 large answers asked for,
    then the connection aborted): Strawberry logged each failed send at ERROR with a traceback."""
    request_id = f"ws-gone-{uuid.uuid4().hex[:12]}"
    page = "{ __schema { types { name description fields { name description } } } }"

    async def drop_mid_answers() -> None:
        async with session(server.url, **{"X-Request-ID": request_id}) as ws:
            for operation in range(20):
                message = {"id": str(operation), "type": "subscribe", "payload": {"query": page}}
                await ws.socket.send(json.dumps(message))
            ws.socket.transport.abort()

    asyncio.run(drop_mid_answers())

    def reported() -> list[str] | None:
        lines = server.output().splitlines()
        for index, line in enumerate(lines):
            if request_id in line and ("went away" in line or " ERROR " in line):
                return lines[index:]
        return None

    lines = wait_until(reported, within=LOG_TIMEOUT, every=0.05, failure=server.output)
    assert " INFO " in lines[0], lines
    later = "\n".join(lines)
    assert "Traceback" not in later, later
    assert " ERROR " not in later, later
