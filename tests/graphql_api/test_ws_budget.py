"""Operations over an open WebSocket spend the same budget as HTTP requests: the per-address
window, the query cost budget and a bound on operations in flight; a client that keeps
going past them is closed with 4429, and frames that are not messages of the protocol with
4400. Against the real app served by uvicorn over a real socket; time is moved by hand."""

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
import pytest
import uvicorn
from bson import ObjectId
from prometheus_client import REGISTRY
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from catalog.validation import ProductDraft
from flashsale.embedded import free_port
from graphql_api.app import create_app
from graphql_api.ws import REFUSALS_BEFORE_CLOSE
from models import User
from services import Services
from tests.conftest import PASSWORD, FrozenTime, rate_limited
from tests.polling import eventually
from tests.ws import RECEIVE_TIMEOUT, Session, session, ws_url

START_TIMEOUT = 10.0
LOGIN = """mutation L($email: String!, $password: String!) {
  login(email: $email, password: $password) { token errors { code } } }"""
REGISTER = """mutation R($email: String!) {
  register(email: $email, password: "correct horse battery") { token errors { code } } }"""
TYPENAME = "{ __typename }"
PRODUCTS = "{ products(first: 3) { edges { node { id } } } }"  # costs 1 + 3 * (1 + 1 + 1)
STOCK = "subscription S($ids: [ID!]!) { stockChanged(productIds: $ids) { productId available } }"


@asynccontextmanager
async def serving(services: Services) -> AsyncIterator[str]:
    """The app on a free loopback port, in this event loop (so the frozen clock applies)."""
    config = uvicorn.Config(
        create_app(services.settings, services),
        host="127.0.0.1",
        port=free_port(),
        log_level="warning",
        lifespan="on",
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:

        async def started() -> bool:
            assert not task.done(), "uvicorn stopped before it started"
            return server.started

        await eventually(
            started, within=START_TIMEOUT, every=0.01, failure=lambda: "uvicorn did not start"
        )
        yield f"http://127.0.0.1:{config.port}"
    finally:
        server.should_exit = True
        async with asyncio.timeout(START_TIMEOUT):
            await task


async def _answer(ws: Session, operation: str, *, completes: bool = True) -> dict[str, Any]:
    """The first message for `operation` (`next` or `error`); for a query or mutation
    (`completes`), the `complete` that follows its `next` is read too."""
    message = await ws.receive()
    assert message["id"] == operation, message
    if completes and message["type"] == "next":
        assert await ws.receive() == {"id": operation, "type": "complete"}
    return message


def _refusal(message: dict[str, Any]) -> dict[str, Any]:
    assert message["type"] == "error", message
    (error,) = message["payload"]
    assert error["extensions"]["code"] == "RATE_LIMITED", error
    extensions: dict[str, Any] = error["extensions"]
    return extensions


async def _closed_with(ws: Session) -> int:
    """Read until the server closes; its close code."""
    try:
        while True:
            await asyncio.wait_for(ws.socket.recv(), RECEIVE_TIMEOUT)
    except ConnectionClosed as closed:
        received = closed.rcvd
    assert received is not None, "closed without a close frame"
    return received.code


def _refused_count(limit: str) -> float:
    return REGISTRY.get_sample_value("flashsale_rate_limited_total", {"limit": limit}) or 0.0


async def _product(services: Services) -> str:
    draft = ProductDraft.parse(name="Phone", price=Decimal("9.99"), total_stock=10)
    return str((await services.catalog.create(draft)).id)


# The per-address window -------------------------------------------------------------------


async def test_logins_over_one_socket_are_refused_past_the_address_window(
    services: Services, frozen_time: FrozenTime
) -> None:
    # Given a window of 5 per minute (the per-e-mail login window out of the way)
    limited = rate_limited(
        services,
        frozen_time,
        rate_limit_per_ip="5/minute",
        rate_limit_login_per_email="1000/second",
    )
    await services.accounts.register("ann@example.com", PASSWORD)
    refused_before = _refused_count("ip")
    async with serving(limited) as url, session(url) as ws:  # the handshake is the first
        # When one socket tries 100 logins, one after the other
        answers = []
        closed_with = None
        for _ in range(100):
            try:
                operation = await ws.subscribe(
                    LOGIN, {"email": "ann@example.com", "password": PASSWORD}
                )
                answers.append(await _answer(ws, operation))
            except ConnectionClosed as closed:
                closed_with = closed.rcvd.code if closed.rcvd else None
                break

    # Then the window let 4 through, refused the next ones with RATE_LIMITED and retryAfter,
    # and closed the socket after REFUSALS_BEFORE_CLOSE of them
    served = [a for a in answers if a["type"] == "next"]
    assert len(served) == 4
    assert all(a["payload"]["data"]["login"]["token"] for a in served)
    refused = [_refusal(a) for a in answers[4:]]
    assert len(refused) == REFUSALS_BEFORE_CLOSE
    assert {r["retryAfter"] for r in refused} == {60}
    assert all(r["requestId"] for r in refused)
    assert _refused_count("ip") - refused_before == REFUSALS_BEFORE_CLOSE
    assert closed_with == 4429


async def test_a_refused_mutation_changes_nothing(
    services: Services, frozen_time: FrozenTime
) -> None:
    limited = rate_limited(services, frozen_time, rate_limit_per_ip="3/minute")
    async with serving(limited) as url, session(url) as ws:
        operations = [
            await ws.subscribe(REGISTER, {"email": f"u{i}@example.com"}) for i in range(4)
        ]
        answers: dict[str, dict[str, Any]] = {}
        while len(answers) < 4:
            message = await ws.receive()
            if message["type"] != "complete":
                answers[message["id"]] = message
    assert [answers[o]["type"] for o in operations] == ["next", "next", "error", "error"]
    _refusal(answers[operations[2]])
    assert sorted(u.email for u in await User.find_all(services.database)) == [
        "u0@example.com",
        "u1@example.com",
    ]


async def test_http_and_websocket_share_the_count_of_one_address(
    services: Services, frozen_time: FrozenTime
) -> None:
    limited = rate_limited(services, frozen_time, rate_limit_per_ip="4/minute")
    async with serving(limited) as url, httpx.AsyncClient(base_url=url) as http:
        # Given two HTTP requests and a handshake from one address (3 of 4)
        for _ in range(2):
            assert (await http.post("/graphql", json={"query": TYPENAME})).status_code == 200
        async with session(url) as ws:
            # When the socket sends two operations
            first = await ws.subscribe(TYPENAME)
            assert (await _answer(ws, first))["type"] == "next"
            second = await ws.subscribe(TYPENAME)
            # Then the second is refused, and so is the next HTTP request
            assert _refusal(await _answer(ws, second))["retryAfter"] == 60
            refused = await http.post("/graphql", json={"query": TYPENAME})
            assert refused.status_code == 429
            assert refused.headers["ratelimit"] == '"ip";r=0;t=60'

            # And once the window has slid past the first requests, the socket goes on
            frozen_time.advance(61)
            third = await ws.subscribe(TYPENAME)
            assert (await _answer(ws, third))["payload"]["data"] == {"__typename": "Query"}


async def test_a_socket_that_keeps_going_after_refusals_is_closed_with_4429(
    services: Services, frozen_time: FrozenTime
) -> None:
    limited = rate_limited(services, frozen_time, rate_limit_per_ip="2/minute")
    async with serving(limited) as url, session(url) as ws:
        served = await ws.subscribe(TYPENAME)
        assert (await _answer(ws, served))["type"] == "next"
        # Sent without reading the refusals in between
        operations = [await ws.subscribe(TYPENAME) for _ in range(REFUSALS_BEFORE_CLOSE + 5)]
        for operation in operations[:REFUSALS_BEFORE_CLOSE]:
            _refusal(await _answer(ws, operation))
        assert await _closed_with(ws) == 4429


async def test_refusals_in_a_row_start_again_once_an_operation_is_let_through(
    services: Services, frozen_time: FrozenTime
) -> None:
    limited = rate_limited(services, frozen_time, rate_limit_per_ip="2/minute")
    async with serving(limited) as url, session(url) as ws:  # the handshake: 1 of 2
        assert (await _answer(ws, await ws.subscribe(TYPENAME)))["type"] == "next"
        for _ in range(REFUSALS_BEFORE_CLOSE - 1):
            _refusal(await _answer(ws, await ws.subscribe(TYPENAME)))
        frozen_time.advance(61)  # the window empties: 2 more
        for _ in range(2):
            assert (await _answer(ws, await ws.subscribe(TYPENAME)))["type"] == "next"
        for _ in range(REFUSALS_BEFORE_CLOSE - 1):
            _refusal(await _answer(ws, await ws.subscribe(TYPENAME)))
        frozen_time.advance(61)
        # Still open: 18 refusals, but never 10 in a row
        assert (await _answer(ws, await ws.subscribe(TYPENAME)))["type"] == "next"


# The query cost budget --------------------------------------------------------------------


async def test_the_cost_budget_applies_to_queries_over_a_websocket(
    services: Services, frozen_time: FrozenTime
) -> None:
    limited = rate_limited(
        services,
        frozen_time,
        query_cost_budget=15,
        query_max_cost=15,
        query_cost_restore_rate=1,
    )
    before = _refused_count("cost")
    async with serving(limited) as url, session(url) as ws:
        first = await ws.subscribe(PRODUCTS)
        answer = await _answer(ws, first)
        assert answer["type"] == "next"
        assert answer["payload"]["extensions"]["cost"]["requestedQueryCost"] == 10
        assert answer["payload"]["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 5

        second = await ws.subscribe(PRODUCTS)
        refused = await _answer(ws, second)
        assert refused["type"] == "next"
        assert refused["payload"]["data"] is None
        (error,) = refused["payload"]["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["retryAfter"] == 5
    assert _refused_count("cost") - before == 1


# Operations in flight ---------------------------------------------------------------------


async def test_operations_in_flight_on_one_socket_are_bounded(services: Services) -> None:
    # Given at most 3 in flight (whether or not the rate limits are on: here they are off)
    bounded = rate_limited(services, FrozenTime(), ws_max_operations=3, rate_limits_enabled=False)
    product = await _product(services)
    before = _refused_count("ws_operations")
    async with serving(bounded) as url, session(url) as ws:
        watching = []
        for _ in range(3):
            watching.append(await ws.subscribe(STOCK, {"ids": [product]}))
            snapshot = await _answer(ws, watching[-1], completes=False)
            assert snapshot["type"] == "next"

        # When a fourth is sent, it is refused, and the three go on
        fourth = await ws.subscribe(STOCK, {"ids": [product]})
        refusal = _refusal(await _answer(ws, fourth))
        assert refusal["maxOperations"] == 3
        assert refusal["retryAfter"] == 1
        assert _refused_count("ws_operations") - before == 1

        # Once one has completed, there is room again
        await ws.socket.send(json.dumps({"id": watching[0], "type": "complete"}))
        fifth = await ws.subscribe(STOCK, {"ids": [product]})
        answer = await _answer(ws, fifth, completes=False)
        assert answer["type"] == "next"
        assert answer["payload"]["data"]["stockChanged"]["available"] == 10


# Frames that are not messages of the protocol ---------------------------------------------


@pytest.mark.parametrize(
    "frame",
    [
        "[]",
        "1",
        "null",
        '"x"',
        "true",
        '{"type": "subscribe", "id": "1", "payload": []}',
        '{"type": "subscribe", "id": "1", "payload": "x"}',
        '{"type": "subscribe", "id": "1", "payload": {"query": 1}}',
        '{"type": "subscribe", "id": "1", "payload": {"query": "{ __typename }", "variables": []}}',
        '{"type": "subscribe", "id": [], "payload": {"query": "{ __typename }"}}',
        '{"type": "complete", "id": {}}',
        # What Python's json module fails on other than with JSONDecodeError, or reads
        # although JSON has no such value: dropped with no close code before.
        "[" * 30_000 + "]" * 30_000,
        '{"type": "subscribe", "id": "1", "payload": {"query": "{ __typename }", "variables": '
        + '{"a": ' * 30_000
        + "1"
        + "}" * 30_001
        + "}",
        '{"type": "subscribe", "id": "1", "payload": {"query": "query($n: Int) { __typename }",'
        ' "variables": {"n": ' + "9" * 5_000 + "}}}",
        '{"type": "subscribe", "id": "1", "payload": {"query": "{ __typename }", '
        '"variables": {"s": "\\ud800"}}}',
        '{"type": "ping", "payload": {"n": NaN}}',
        # A close reason holds 123 bytes: Strawberry's quoted the type, or the id, whole.
        json.dumps({"type": "x" * 200}),
        json.dumps({"type": "subscribe", "id": "1" * 200, "payload": {"query": "{ __typename }"}}),
        json.dumps({"type": "complete", "id": "é" * 40}),
    ],
)
async def test_frames_that_are_not_protocol_messages_close_with_4400(
    services: Services, frame: str
) -> None:
    async with serving(services) as url, session(url) as ws:
        await ws.socket.send(frame)
        assert await _closed_with(ws) == 4400


@pytest.mark.parametrize(
    "payload",
    [
        {"query": ""},
        {"query": "type Product { id: ID }"},
        {"query": "query A { __typename }", "operationName": "B"},
        {"query": None, "extensions": {}},
    ],
    ids=["empty", "type-definitions", "unknown-operation-name", "no-query"],
)
async def test_a_document_with_no_operation_to_run_is_a_coded_error(
    services: Services, payload: dict[str, Any]
) -> None:
    """Over HTTP these are 400 BAD_REQUEST; over a WebSocket they were
    INTERNAL_SERVER_ERROR, with a traceback logged."""
    async with serving(services) as url, session(url) as ws:
        await ws.socket.send(json.dumps({"id": "1", "type": "subscribe", "payload": payload}))
        answer = await _answer(ws, "1")
        assert answer["type"] == "error", answer
        assert [e["extensions"]["code"] for e in answer["payload"]] == ["GRAPHQL_VALIDATION_FAILED"]
        assert (await _answer(ws, await ws.subscribe(TYPENAME)))["type"] == "next"


async def test_a_frame_that_is_not_an_object_closes_before_connection_init(
    services: Services,
) -> None:
    async with (
        serving(services) as url,
        connect(ws_url(url), subprotocols=[Subprotocol("graphql-transport-ws")]) as socket,
    ):
        await socket.send("[]")
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), RECEIVE_TIMEOUT)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4400


async def test_the_older_graphql_ws_protocol_is_refused(services: Services) -> None:
    """It would be a way round the limits: only graphql-transport-ws is served."""
    async with (
        serving(services) as url,
        connect(ws_url(url), subprotocols=[Subprotocol("graphql-ws")]) as socket,
    ):
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), RECEIVE_TIMEOUT)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 4406


# The per-user window --------------------------------------------------------------------


async def test_reserves_sent_at_once_over_one_socket_are_each_counted_once(
    services: Services, frozen_time: FrozenTime, customer_token: str
) -> None:
    """The operations of one socket share its context, but each counts its own reserve in
    the user's window once (the query guard counts it with the operation's cost)."""
    limited = rate_limited(services, frozen_time, rate_limit_reserve_per_user="3/minute")
    product = await _product(services)
    reserve = """mutation R($p: ID!) { reserve(productId: $p, quantity: 1) {
      reservation { id } errors { code } } }"""
    async with serving(limited) as url, session(url, customer_token) as ws:
        for _ in range(5):
            await ws.subscribe(reserve, {"p": product})
        answers: dict[str, dict[str, Any]] = {}
        while len(answers) < 5:  # in whatever order they finish
            message = await ws.receive()
            if message["type"] != "complete":
                answers[message["id"]] = message
    codes = []
    for answer in answers.values():
        assert answer["type"] == "next", answer
        errors = answer["payload"].get("errors") or []
        codes.append(errors[0]["extensions"]["code"] if errors else "RESERVED")
    assert sorted(codes) == ["RATE_LIMITED", "RATE_LIMITED", "RESERVED", "RESERVED", "RESERVED"]
    counters = await services.engine.counters([ObjectId(product)])
    assert counters[ObjectId(product)].reserved == 3
