"""A fuzzing pass over the whole schema against a real server process: queries and
mutations generated from the schema (valid ones, and invalid ones in hypothesis-graphql's
negative mode), sent anonymously, as a customer and as an admin; then the transport itself:
JSON bodies, GET parameters and WebSocket frames with random structures, numbers JSON
cannot hold or Python reads badly (1e400, NaN, 5,000 digits), strings that are no Unicode
text, deep nesting and wrong types in every field. No answer may be a 500, carry a
traceback, or hide an unexpected error (INTERNAL_SERVER_ERROR); every refusal is JSON with
a code, and a WebSocket the server ends is closed with a 44xx code (1009 for a message over
MAX_REQUEST_BYTES). The server logs no traceback meanwhile."""

import asyncio
import hashlib
import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pymongo
import pytest
from bson import ObjectId
from graphql import StringValueNode
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis_graphql import Mode, from_schema
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed
from websockets.typing import Subprotocol

from core.settings import Settings
from graphql_api.schema import build_schema
from graphql_api.strawberry_internals import graphql_schema
from models import Role, User
from services import Services
from tests.graphql_api.test_guards_linear import BOMBS, _largest
from tests.processes import ServerProcess, running, shared_env
from tests.ws import RECEIVE_TIMEOUT, session, ws_url

SCHEMA = graphql_schema(build_schema())
MAX_REQUEST_BYTES = Settings.model_fields["max_request_bytes"].default
SCALARS = {
    "Money": st.one_of(
        st.decimals(min_value=Decimal("-1e12"), max_value=Decimal("1e12"), places=2).map(
            lambda d: StringValueNode(value=str(d))
        ),
        st.text(max_size=20).map(lambda t: StringValueNode(value=t)),
    ),
    "DateTime": st.datetimes().map(lambda d: StringValueNode(value=d.isoformat())),
}


@pytest.fixture(scope="module")
def server(servers: dict[str, str], settings: Any) -> Iterator[ServerProcess]:
    with running(shared_env(servers, settings.mongodb_db)) as (process,):
        yield process


def _signed_in(services: Services, role: Role) -> str:
    """A token of a real user (the test is synchronous: a blocking client writes it)."""
    settings = services.settings
    with pymongo.MongoClient(str(settings.mongodb_uri), document_class=dict) as client:
        user = User(email=f"{ObjectId()}@fuzz.example", password_hash="-", role=role)
        client[settings.mongodb_db][User.Settings.name].insert_one(user.to_mongo())
    return services.accounts.tokens.issue(user.id, role)


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    assert response.headers["content-type"].startswith("application/json"), response.text
    body = response.json()
    assert isinstance(body, dict), body
    codes = [error.get("extensions", {}).get("code") for error in body.get("errors") or []]
    assert all(codes), body
    assert "INTERNAL_SERVER_ERROR" not in codes, body
    if response.status_code >= 400:
        assert codes, body


@pytest.mark.parametrize("mode", [Mode.POSITIVE, Mode.NEGATIVE], ids=["valid", "invalid"])
def test_generated_operations_never_fail_the_server(
    server: ServerProcess, services: Services, mode: Mode
) -> None:
    tokens = [None, *(_signed_in(services, role) for role in (Role.CUSTOMER, Role.ADMIN))]
    with httpx.Client(base_url=server.url, timeout=30) as http:

        @settings(
            max_examples=150,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(
            query=from_schema(SCHEMA, custom_scalars=SCALARS, mode=mode),
            token=st.sampled_from(tokens),
        )
        def fuzz(query: str, token: str | None) -> None:
            headers = {"Authorization": f"Bearer {token}"} if token else {}
            _check(http.post("/graphql", json={"query": query}, headers=headers))

        fuzz()


# Raw JSON text, so the bodies can hold what json.dumps would never write.
ODD_SCALARS = [
    *("1e400", "-1e400", "1E-400", "-0", "-0.0", "0e0", "2147483648", "-2147483649"),
    *("1" + "0" * 4299, "9" * 4301, "-" + "9" * 5000, "NaN", "Infinity", "-Infinity"),
    *(r'"\ud800"', r'"x\udfff"', r'"\ud83d\ude00"', r'"\u0000"', '"' + "x" * 5000 + '"'),
    *('"2026-03-01T00:00:00Z"', '"9999-12-31T23:59:59Z"', '"0001-01-01T00:00:00+01:00"'),
    *('"19.99"', '"1e400"', '"000000000000000000000000"', "[]", "{}"),
]
KEYS = ["first", "after", "onSale", "id", "input", "from", "to", "top", "ids", "name", "price"]
KEYS += ["totalStock", "description", "maxPerCustomer", "holdSeconds", "saleStartsAt"]
_scalars = st.one_of(
    st.sampled_from(ODD_SCALARS),
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=20)).map(
        json.dumps
    ),
)
_keys = st.one_of(st.sampled_from(KEYS), st.text(max_size=8)).map(json.dumps)
FRAGMENTS = st.recursive(
    _scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4).map(lambda items: "[" + ",".join(items) + "]"),
        st.lists(st.tuples(_keys, children), max_size=5).map(
            lambda pairs: "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"
        ),
    ),
    max_leaves=12,
)


def _deep(most: int) -> st.SearchStrategy[str]:
    """Arrays or objects nested 50 to `most` deep."""
    return st.tuples(st.integers(50, most), st.sampled_from(["[", '{"a":'])).map(
        lambda spec: spec[1] * spec[0] + "1" + ("]" if spec[1] == "[" else "}") * spec[0]
    )


VALUES = st.one_of(FRAGMENTS, _deep(30_000))
OPERATIONS = [
    "query P($first: Int, $after: String, $onSale: Boolean) "
    "{ products(first: $first, after: $after, onSale: $onSale) { totalCount } }",
    "query O($id: ID!) { product(id: $id) { name available } }",
    "mutation C($input: ProductInput!) "
    "{ createProduct(input: $input) { product { id } errors { code } } }",
    "query S($from: DateTime!, $to: DateTime!, $top: Int) "
    "{ salesStats(from: $from, to: $to, top: $top) { totals { orders } byDay { day } } }",
    "subscription W($ids: [ID!]!) { stockChanged(productIds: $ids) { available } }",
    "query A { __typename } query B { __typename }",
    "{ __typename }",
]


@st.composite
def _variables(draw: st.DrawFn) -> str:
    pairs = draw(st.lists(st.tuples(_keys, VALUES), max_size=4))
    return "{" + ",".join(f"{k}:{v}" for k, v in pairs) + "}"


@st.composite
def _request_fields(draw: st.DrawFn) -> dict[str, str]:
    """The raw JSON text of each field sent, right or wrong, or absent."""
    right = {
        "query": st.sampled_from(OPERATIONS).map(json.dumps),
        "variables": _variables(),
        "operationName": st.sampled_from(["A", "B", "P", "nope"]).map(json.dumps),
        "extensions": st.just("{}"),
    }
    fields = {}
    for name, value in right.items():
        choice = draw(st.sampled_from(["right", "right", "wrong", "absent"]))
        if choice != "absent":
            fields[name] = draw(value if choice == "right" else VALUES)
    return fields


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    kind = draw(st.sampled_from(["request", "request", "request", "value", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=100))
    if kind == "value":
        return draw(VALUES).encode()
    fields = draw(_request_fields())
    return ("{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in fields.items()) + "}").encode()


def _fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        deadline=None,
        derandomize=True,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.function_scoped_fixture,
            HealthCheck.data_too_large,
        ],
    )


def test_generated_json_bodies_never_fail_the_server(
    server: ServerProcess, services: Services
) -> None:
    tokens = [None, _signed_in(services, Role.ADMIN)]
    with httpx.Client(base_url=server.url, timeout=30) as http:

        @_fuzz_settings(300)
        @given(body=_bodies(), token=st.sampled_from(tokens))
        def fuzz(body: bytes, token: str | None) -> None:
            headers = {"content-type": "application/json"}
            if token:
                headers["authorization"] = f"Bearer {token}"
            _check(http.post("/graphql", content=body, headers=headers))

        fuzz()


def test_generated_query_parameters_never_fail_the_server(
    server: ServerProcess, services: Services
) -> None:
    tokens = [None, _signed_in(services, Role.ADMIN)]
    # Short enough for any HTTP server's request line (uvicorn's h11 takes 64 KiB of head).
    short = st.one_of(FRAGMENTS.filter(lambda text: len(text) < 8_000), _deep(1_500))
    with httpx.Client(base_url=server.url, timeout=30) as http:

        @_fuzz_settings(150)
        @given(
            query=st.one_of(st.sampled_from(OPERATIONS), st.text(max_size=30)),
            others=st.dictionaries(
                st.sampled_from(["variables", "operationName", "extensions"]), short
            ),
            token=st.sampled_from(tokens),
        )
        def fuzz(query: str, others: dict[str, str], token: str | None) -> None:
            headers = {"authorization": f"Bearer {token}"} if token else {}
            response = http.get("/graphql", params={"query": query, **others}, headers=headers)
            _check(response)

        fuzz()


def _coded(errors: list[dict[str, Any]], where: object) -> list[str]:
    codes = [(error.get("extensions") or {}).get("code") for error in errors]
    assert errors, where
    assert all(codes), where
    assert "INTERNAL_SERVER_ERROR" not in codes, where
    return [str(code) for code in codes]


# Every way a document can be wrong, each with the code it must get, over HTTP and WebSocket.
INVALID_DOCUMENTS = {
    "unknown field": ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
    "wrong argument type": ('{ products(first: "x") { totalCount } }', "GRAPHQL_VALIDATION_FAILED"),
    "missing variable": (
        "query($n: Int!) { products(first: $n) { totalCount } }",
        "BAD_USER_INPUT",
    ),
    "undeclared variable": ("{ products(first: $n) { totalCount } }", "BAD_USER_INPUT"),
    "bad enum": ("{ myReservations(status: NOPE) { id } }", "GRAPHQL_VALIDATION_FAILED"),
    "syntax error": ("{ products( }", "GRAPHQL_PARSE_FAILED"),
    "unknown directive": ("{ __typename @nope }", "GRAPHQL_VALIDATION_FAILED"),
    "over the token limit": ("{ " + "__typename " * 2_100 + "}", "QUERY_TOO_COMPLEX"),
    "unknown argument": ("{ products(nope: 1) { totalCount } }", "GRAPHQL_VALIDATION_FAILED"),
    "unknown fragment": ("{ ...Nope }", "GRAPHQL_VALIDATION_FAILED"),
    "unused fragment": (
        "{ __typename } fragment F on Query { __typename }",
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "fragment cycle": (
        "{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }",
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "Int overflow": (
        "{ products(first: 2147483648) { totalCount } }",
        "GRAPHQL_VALIDATION_FAILED",
    ),
    "missing selection": ("{ products }", "GRAPHQL_VALIDATION_FAILED"),
    "directive misplaced": ("query @include(if: true) { __typename }", "GRAPHQL_VALIDATION_FAILED"),
    "only a comment": ("# nothing", "GRAPHQL_PARSE_FAILED"),
    "too deep": (
        "{ " + "... on Query { " * 300 + "__typename" + " }" * 300 + " }",
        "QUERY_TOO_COMPLEX",
    ),
    "alias bomb": (
        "{ ...F0 } "
        + " ".join(
            f"fragment F{i} on Query {{ a: __typename ...F{i + 1} ...F{i + 1} }}" for i in range(30)
        )
        + " fragment F30 on Query { __typename }",
        "QUERY_TOO_COMPLEX",
    ),
}


@pytest.mark.parametrize("name", INVALID_DOCUMENTS)
async def test_every_invalid_document_gets_its_code_over_http_and_websocket(
    server: ServerProcess, name: str
) -> None:
    document, code = INVALID_DOCUMENTS[name]
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        body = (await http.post("/graphql", json={"query": document})).json()
    assert body.get("data") is None
    assert _coded(body["errors"], body) == [code] * len(body["errors"]), body
    async with session(server.url) as ws:
        operation = await ws.subscribe(document)
        answer = await ws.receive()
    assert answer["id"] == operation
    errors = answer["payload"] if answer["type"] == "error" else answer["payload"]["errors"]
    assert _coded(errors, answer) == [code] * len(errors), answer


def _frame_text(value: object) -> st.SearchStrategy[str]:
    return st.just(json.dumps(value))


_PAYLOAD_FIELDS = {
    "query": st.one_of(
        st.sampled_from([*OPERATIONS, *(d for d, _ in INVALID_DOCUMENTS.values())]).map(json.dumps),
        from_schema(SCHEMA, custom_scalars=SCALARS, mode=Mode.NEGATIVE).map(json.dumps),
        VALUES,
    ),
    "variables": st.one_of(_variables(), VALUES),
    "operationName": st.one_of(st.sampled_from(["A", "B", "W", "nope"]).map(json.dumps), VALUES),
    "extensions": st.one_of(
        st.just('{"persistedQuery": {"version": 1, "sha256Hash": "' + "0" * 64 + '"}}'),
        VALUES,
    ),
}


@st.composite
def _frames(draw: st.DrawFn) -> str | bytes:
    """A frame after connection_init: a subscribe (right or wrong in every field), another
    message type, or anything at all."""
    kind = draw(st.sampled_from(["subscribe", "subscribe", "subscribe", "other", "any", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=100))
    if kind == "any":
        return draw(st.one_of(VALUES, st.text(max_size=50)))
    fields: dict[str, str] = {
        "type": json.dumps("subscribe")
        if kind == "subscribe"
        else draw(
            st.one_of(
                st.sampled_from(["ping", "pong", "complete", "connection_init", "next"]).map(
                    json.dumps
                ),
                VALUES,
            )
        ),
        "id": draw(st.one_of(st.sampled_from(['"fuzz"', '"' + "i" * 100 + '"']), VALUES)),
    }
    if kind == "subscribe" and draw(st.booleans()):
        payload = {
            name: draw(value) for name, value in _PAYLOAD_FIELDS.items() if draw(st.booleans())
        }
        fields["payload"] = "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in payload.items()) + "}"
    else:
        fields["payload"] = draw(VALUES)
    present = {k: v for k, v in fields.items() if k == "type" or draw(st.booleans())}
    return "{" + ",".join(f"{json.dumps(k)}:{v}" for k, v in present.items()) + "}"


async def _after_frame(socket: ClientConnection, frame: str | bytes) -> None:
    """Send `frame`, then a probe: read every message until the probe's answer is complete
    or the server closes the socket, and check each."""
    await socket.send(frame)
    probe = {"id": "probe", "type": "subscribe", "payload": {"query": "{ __typename }"}}
    try:
        await socket.send(json.dumps(probe))
        while True:
            message = json.loads(await asyncio.wait_for(socket.recv(), RECEIVE_TIMEOUT))
            if message["type"] == "error":
                _coded(message["payload"], message)
            elif message["type"] == "next" and message["payload"].get("errors"):
                _coded(message["payload"]["errors"], message)
            if message == {"id": "probe", "type": "complete"}:
                return
    except ConnectionClosed as exc:
        close = exc.rcvd
    assert close is not None, f"{frame!r:.200}: closed with no close frame"
    too_big = close.code == 1009 and len(frame) > MAX_REQUEST_BYTES
    assert too_big or 4400 <= close.code < 4500, f"{frame!r:.200}: {close}"


def test_generated_websocket_frames_never_fail_the_server(
    server: ServerProcess, services: Services
) -> None:
    logged = len(server.output())
    tokens = [None, _signed_in(services, Role.ADMIN)]

    @_fuzz_settings(250)
    @given(frame=_frames(), token=st.sampled_from(tokens))
    def fuzz(frame: str | bytes, token: str | None) -> None:
        async def one() -> None:
            async with session(server.url, token) as ws:
                await _after_frame(ws.socket, frame)

        asyncio.run(one())

    fuzz()
    assert "Traceback" not in server.output()[logged:], server.output()[logged:]


async def test_a_websocket_message_over_the_body_limit_closes_with_1009(
    server: ServerProcess,
) -> None:
    """uvicorn's own bound is 16 MiB, each message decoded whole; the server's is
    MAX_REQUEST_BYTES, as for a request body."""
    async with connect(
        ws_url(server.url), subprotocols=[Subprotocol("graphql-transport-ws")], max_size=None
    ) as socket:
        await socket.send(json.dumps({"type": "ping", "payload": {"x": "x" * MAX_REQUEST_BYTES}}))
        with pytest.raises(ConnectionClosed) as closed:
            await asyncio.wait_for(socket.recv(), RECEIVE_TIMEOUT)
    assert closed.value.rcvd is not None
    assert closed.value.rcvd.code == 1009


@pytest.mark.parametrize("name", BOMBS)
async def test_every_bomb_at_the_token_limit_is_answered_over_every_transport(
    server: ServerProcess, name: str
) -> None:
    """The bombs whose checking work tests/graphql_api/test_guards_linear.py counts, each at
    the largest size the token limit lets through, sent to a real server over HTTP, as an
    automatic persisted query (registered, then by its hash over GET) and over a
    WebSocket: each is answered (refused with a code, or run), never masked, and the
    process goes on serving."""
    document = _largest(BOMBS[name])
    extensions = {
        "persistedQuery": {
            "version": 1,
            "sha256Hash": hashlib.sha256(document.encode()).hexdigest(),
        }
    }
    async with httpx.AsyncClient(base_url=server.url, timeout=30) as http:
        answers = [
            await http.post("/graphql", json={"query": document}),
            await http.post("/graphql", json={"query": document, "extensions": extensions}),
            await http.get("/graphql", params={"extensions": json.dumps(extensions)}),
        ]
        for response in answers:
            _check(response)
        async with session(server.url) as ws:
            operation = await ws.subscribe(document)
            answer = await ws.receive()
            assert answer["id"] == operation
            if answer["type"] == "error":
                _coded(answer["payload"], answer)
            else:
                assert answer["type"] == "next", answer
                if answer["payload"].get("errors"):
                    _coded(answer["payload"]["errors"], answer)
        assert (await http.get("/healthz")).status_code == 200
