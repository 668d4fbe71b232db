"""GraphQL over HTTP: media types, status codes, and refusals that never reach a resolver."""

import re

import httpx
import pytest

from graphql_api.graphiql import STATIC_DIR
from models import Product
from models.stored import Database
from tests.conftest import error_codes

GRAPHQL_RESPONSE = "application/graphql-response+json"
QUERY = "{ products(first: 1) { totalCount } }"


def _nested(depth: int, kind: str = "array") -> bytes:
    """A JSON value `depth` arrays (or objects) deep."""
    if kind == "array":
        return b"[" * depth + b"]" * depth
    return b'{"a":' * depth + b"1" + b"}" * depth


async def test_application_json_is_the_default(client: httpx.AsyncClient) -> None:
    response = await client.post("/graphql", json={"query": QUERY})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.json()["data"] == {"products": {"totalCount": 0}}


@pytest.mark.parametrize(
    ("accept", "media_type"),
    [
        (GRAPHQL_RESPONSE, GRAPHQL_RESPONSE),
        (f"{GRAPHQL_RESPONSE}, application/json;q=0.9", GRAPHQL_RESPONSE),
        (f"application/json, {GRAPHQL_RESPONSE}", "application/json"),
        (f"application/json;q=0.5, {GRAPHQL_RESPONSE}", GRAPHQL_RESPONSE),
        ("*/*", "application/json"),
        ("application/json", "application/json"),
    ],
)
async def test_accept_header_picks_the_media_type(
    client: httpx.AsyncClient, accept: str, media_type: str
) -> None:
    response = await client.post("/graphql", json={"query": QUERY}, headers={"accept": accept})
    assert response.status_code == 200
    assert response.headers["content-type"] == media_type


async def test_unacceptable_accept_header_is_406(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": QUERY}, headers={"accept": "application/xml"}
    )
    assert response.status_code == 406
    assert error_codes(response.json()) == ["NOT_ACCEPTABLE"]


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("{ products(first: 1) { totalCount }", "GRAPHQL_PARSE_FAILED"),
        ("{ products(first: 1) { nope } }", "GRAPHQL_VALIDATION_FAILED"),
    ],
)
async def test_request_errors_with_graphql_response_json_are_400_without_data(
    client: httpx.AsyncClient, query: str, code: str
) -> None:
    strict = await client.post(
        "/graphql", json={"query": query}, headers={"accept": GRAPHQL_RESPONSE}
    )
    legacy = await client.post("/graphql", json={"query": query})

    assert strict.status_code == 400
    assert "data" not in strict.json()
    assert error_codes(strict.json()) == [code]
    assert legacy.status_code == 200
    assert error_codes(legacy.json()) == [code]


async def test_bad_variables_with_graphql_response_json_are_400(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql",
        json={
            "query": "query Q($n: Int!) { products(first: $n) { totalCount } }",
            "variables": {"n": "many"},
        },
        headers={"accept": GRAPHQL_RESPONSE},
    )
    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_USER_INPUT"]


async def test_queries_work_over_get(client: httpx.AsyncClient) -> None:
    response = await client.get("/graphql", params={"query": QUERY})
    assert response.status_code == 200
    assert response.json()["data"]["products"]["totalCount"] == 0


async def test_mutations_over_get_are_405(client: httpx.AsyncClient) -> None:
    response = await client.get(
        "/graphql",
        params={"query": 'mutation { login(email: "a@b.example", password: "x") { token } }'},
    )
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert error_codes(response.json()) == ["METHOD_NOT_ALLOWED"]


@pytest.mark.parametrize(
    ("content", "content_type"),
    [
        (b"{not json", "application/json"),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b'"just a string"', "application/json"),
        (b"[]", "application/json"),
        (b'[{"query": "{ __typename }"}]', "application/json"),
        (b'{"query": 42}', "application/json"),
        (b'{"query": "{ __typename }", "variables": "nope"}', "application/json"),
        (b"query=%7B__typename%7D", "application/x-www-form-urlencoded"),
        (b"{ __typename }", "text/plain"),
        (b"", "application/json"),
        (b"{}", "application/json"),
        (b"1", "application/json"),
        (b"null", "application/json"),
        (b"true", "application/json"),
        (b'{"query": "{ __typename }", "variables": [1]}', "application/json"),
        (b'{"query": "{ __typename }", "operationName": 1}', "application/json"),
        (b'{"query": "{ __typename }", "operationName": ["A"]}', "application/json"),
        (b'{"query": "{ __typename }", "extensions": "x"}', "application/json"),
        (b'{"query": "{ __typename }", "extensions": []}', "application/json"),
        # Python's json reads these, but they are not JSON.
        (b'{"query": "{ __typename }", "variables": {"n": NaN}}', "application/json"),
        (b'{"query": "{ __typename }", "variables": {"n": -Infinity}}', "application/json"),
        # Numbers past what a double or Python's int conversion holds.
        (b'{"query": "{ __typename }", "variables": {"n": 1e400}}', "application/json"),
        (b'{"query": "{ __typename }", "variables": {"n": -1e400}}', "application/json"),
        (
            b'{"query": "{ __typename }", "variables": {"n": %s}}' % (b"9" * 5000),
            "application/json",
        ),
        # Nesting past the parser's recursion limit.
        (
            b'{"query": "{ __typename }", "variables": {"n": %s}}' % _nested(20_000),
            "application/json",
        ),
        (_nested(30_000), "application/json"),
        (
            b'{"query": "{ __typename }", "extensions": {"n": %s}}' % _nested(5_000, "object"),
            "application/json",
        ),
        # A string that is no Unicode text (a lone surrogate).
        (b'{"query": "{ __typename }", "variables": {"n": "\\ud800"}}', "application/json"),
    ],
)
async def test_malformed_bodies_are_400_with_a_code(
    client: httpx.AsyncClient, content: bytes, content_type: str, database: Database
) -> None:
    response = await client.post(
        "/graphql", content=content, headers={"content-type": content_type}
    )
    assert response.status_code == 400, response.text
    assert error_codes(response.json()) == ["BAD_REQUEST"]
    assert await Product.count(database) == 0


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("variables", "{not json"),
        ("variables", "[1]"),
        ("variables", "1"),
        ("variables", '"x"'),
        ("variables", '{"n": NaN}'),
        ("variables", '{"n": 1e400}'),
        ("variables", '{"n": %s}' % ("9" * 5000)),
        ("variables", '{"n": ' + _nested(5_000).decode() + "}"),
        ("variables", '{"n": "\\udfff"}'),
        ("extensions", "x"),
        ("extensions", "[]"),
        ("extensions", '{"n": ' + _nested(3_000, "object").decode() + "}"),
    ],
    ids=lambda value: value[:30],
)
async def test_malformed_query_parameters_are_400_with_a_code(
    client: httpx.AsyncClient, name: str, value: str
) -> None:
    response = await client.get("/graphql", params={"query": "{ __typename }", name: value})
    assert response.status_code == 400, response.text
    assert error_codes(response.json()) == ["BAD_REQUEST"]


@pytest.mark.parametrize(("depth", "status"), [(64, 200), (65, 400)])
async def test_bodies_may_nest_64_deep(client: httpx.AsyncClient, depth: int, status: int) -> None:
    """The body is 1 deep, its `extensions` 2: then arrays, to `depth` in all."""
    body = b'{"query": "{ __typename }", "extensions": {"a": %s}}' % _nested(depth - 2)
    response = await client.post(
        "/graphql", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    if status == 400:
        assert error_codes(response.json()) == ["BAD_REQUEST"]
        assert "nested more than 64 deep" in response.json()["errors"][0]["message"]


async def test_a_lone_surrogate_never_reaches_the_database(
    client: httpx.AsyncClient, admin_token: str, database: Database
) -> None:
    """JSON may escape half of a UTF-16 pair alone; no UTF-8 encoder (BSON's) takes it."""
    body = (
        b'{"query": "mutation C($i: ProductInput!) '
        b'{ createProduct(input: $i) { errors { code } } }",'
        b' "variables": {"i": {"name": "Lamp \\ud800", "price": "1.00", "totalStock": 1}}}'
    )
    response = await client.post(
        "/graphql",
        content=body,
        headers={"content-type": "application/json", "authorization": f"Bearer {admin_token}"},
    )
    assert response.status_code == 400, response.text
    assert error_codes(response.json()) == ["BAD_REQUEST"]
    assert await Product.count(database) == 0


async def test_operation_name_must_be_a_string(client: httpx.AsyncClient) -> None:
    response = await client.post(
        "/graphql", json={"query": "query A { __typename }", "operationName": {"A": 1}}
    )
    assert response.status_code == 400
    assert error_codes(response.json()) == ["BAD_REQUEST"]
    assert "operationName" in response.json()["errors"][0]["message"]


@pytest.mark.parametrize("method", ["GET", "POST"])
async def test_subscriptions_over_http_are_refused_with_a_code(
    client: httpx.AsyncClient, method: str, database: Database
) -> None:
    product = Product(name="Lamp", price_cents=100, total_stock=3, max_per_customer=1)
    await product.insert(database)
    subscription = f'subscription {{ stockChanged(productIds: ["{product.id}"]) {{ available }} }}'

    if method == "GET":
        response = await client.get("/graphql", params={"query": subscription})
    else:
        response = await client.post("/graphql", json={"query": subscription})

    assert response.status_code == 400, response.text
    assert error_codes(response.json()) == ["BAD_REQUEST"]
    assert "WebSocket" in response.json()["errors"][0]["message"]


async def test_oversized_body_is_413(client: httpx.AsyncClient) -> None:
    huge = "x" * (64 * 1024 + 1)
    response = await client.post(
        "/graphql",
        json={
            "query": "mutation R($e: String!) { login(email: $e, password: $e) { token } }",
            "variables": {"e": huge},
        },
    )
    assert response.status_code == 413
    assert error_codes(response.json()) == ["PAYLOAD_TOO_LARGE"]


async def test_request_id_is_echoed_or_made(client: httpx.AsyncClient) -> None:
    given = await client.post("/graphql", json={"query": QUERY}, headers={"x-request-id": "abc-1"})
    made = await client.post("/graphql", json={"query": QUERY}, headers={"x-request-id": "<bad>"})
    assert given.headers["x-request-id"] == "abc-1"
    assert re.fullmatch(r"[0-9a-f]{32}", made.headers["x-request-id"])


async def test_graphiql_page_uses_only_local_assets(client: httpx.AsyncClient) -> None:
    page = await client.get("/graphql", headers={"accept": "text/html"})
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]
    assert "://" not in re.sub(r"//.*", "", page.text.split("<body>")[0])
    assets = re.findall(r'(?:src|href)="(/static/[^"]+)"', page.text)
    assert len(assets) == 6
    for asset in assets:
        served = await client.get(asset)
        assert served.status_code == 200, asset
        assert served.content == (STATIC_DIR / asset.removeprefix("/static/")).read_bytes()


async def test_health_and_readiness(client: httpx.AsyncClient) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "checks": {"redis": True, "mongodb": True}}
