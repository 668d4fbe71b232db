"""Hostile documents are refused before any resolver runs: too deep, too many aliases, too
many tokens, too costly, batched, or several operations at once. Each test sends a document
that would reserve stock, then checks that none was taken."""

import json
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
import pytest_asyncio
from bson import ObjectId
from graphql.execution.values import get_variable_values

from catalog.validation import ProductDraft
from core.settings import load_settings
from graphql_api.app import create_app
from services import Services
from tests.conftest import FrozenTime, error_codes, rate_limited

RESERVE_FIELD = "reserve(productId: $p, quantity: 1) { reservation { id } errors { code } }"


@pytest_asyncio.fixture(loop_scope="session")
async def product(services: Services) -> str:
    draft = ProductDraft.parse(name="Phone", price=Decimal("9.99"), total_stock=100)
    return str((await services.catalog.create(draft)).id)


@pytest_asyncio.fixture(loop_scope="session")
async def shopper(client: httpx.AsyncClient, customer_token: str) -> AsyncIterator[Any]:
    async def post(
        query: str, variables: dict[str, Any] | None = None, operation: str | None = None
    ) -> httpx.Response:
        return await client.post(
            "/graphql",
            json={"query": query, "variables": variables or {}, "operationName": operation},
            headers={"Authorization": f"Bearer {customer_token}"},
        )

    yield post


async def _untouched(services: Services, product: str) -> None:
    counters = await services.engine.counters([ObjectId(product)])
    assert counters[ObjectId(product)].reserved == 0


async def test_too_deep_is_refused(services: Services, product: str, customer_token: str) -> None:
    settings = load_settings(
        **{**services.settings.model_dump(), "query_max_depth": 2}, _env_file=None
    )
    app = create_app(settings, services)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        deep = """mutation R($p: ID!) { reserve(productId: $p, quantity: 1) {
          reservation { product { name } } } }"""
        answer = await http.post(
            "/graphql",
            json={"query": deep, "variables": {"p": product}},
            headers={"Authorization": f"Bearer {customer_token}"},
        )
    body = answer.json()
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    # Depth counts from 0 at the root field: reserve 0, reservation 1, product 2, name 3.
    assert "exceeds maximum operation depth of 2" in body["errors"][0]["message"]
    await _untouched(services, product)


async def test_deep_nesting_is_refused_at_the_default_depth(shopper: Any) -> None:
    deep = "{ products { edges { node { " + "a { " * 12 + "b" + " }" * 12 + " } } } }"
    assert "QUERY_TOO_COMPLEX" in error_codes((await shopper(deep)).json())


async def test_an_alias_bomb_is_refused(services: Services, product: str, shopper: Any) -> None:
    bomb = "mutation R($p: ID!) { " + " ".join(f"a{i}: {RESERVE_FIELD}" for i in range(16)) + " }"
    body = (await shopper(bomb, {"p": product})).json()
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert body["errors"][0]["message"] == "16 aliases found. Allowed: 15"
    await _untouched(services, product)


async def test_the_cost_counts_a_page_size_from_a_variables_default(shopper: Any) -> None:
    fields = "id name description price totalStock maxPerCustomer saleStartsAt saleEndsAt "
    fields += "createdAt updatedAt sold reserved available onSale holdSeconds"
    query = (
        "query P($n: Int! = 100) { products(first: $n) { edges { cursor node { "
        + fields
        + " } } pageInfo { hasNextPage endCursor } totalCount } }"
    )

    body = (await shopper(query)).json()  # no variables: $n is 100

    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    # Under `products`, per item: edges, cursor, node and 15 fields, pageInfo and its 2
    # fields, totalCount.
    assert body["errors"][0]["extensions"]["cost"] == 1 + 100 * 22


async def test_too_many_tokens_is_refused(services: Services, product: str, shopper: Any) -> None:
    padded = (
        "mutation R($p: ID!) { reserve(productId: $p, quantity: 1) { "
        + "__typename " * 2_100
        + "} }"
    )
    body = (await shopper(padded, {"p": product})).json()
    assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
    assert "more than 2000 tokens" in body["errors"][0]["message"]
    await _untouched(services, product)


async def test_nesting_past_the_parser_limit_is_refused(shopper: Any) -> None:
    deep = "{" + "a {" * 5_000 + "}" * 5_001
    answer = await shopper(deep)
    assert answer.status_code == 200
    assert error_codes(answer.json()) == ["QUERY_TOO_COMPLEX"]


async def test_fragments_nested_past_what_validation_walks_are_refused(shopper: Any) -> None:
    """A chain of 210 fragments, each only spreading the next: no field depth (the depth
    rule lets it through) and under the token limit, but deeper than graphql-core walks
    (200): its "Validation aborted." is QUERY_TOO_COMPLEX, not an uncoded error."""
    chain = "\n".join(f"fragment F{n} on Query {{ ...F{n + 1} }}" for n in range(210))
    answer = await shopper(f"{{ ...F0 }}\n{chain}\nfragment F210 on Query {{ __typename }}")
    assert answer.status_code == 200
    assert error_codes(answer.json()) == ["QUERY_TOO_COMPLEX"], answer.json()


async def test_batched_operations_are_refused(
    client: httpx.AsyncClient, services: Services, product: str, customer_token: str
) -> None:
    one = {"query": f"mutation R($p: ID!) {{ {RESERVE_FIELD} }}", "variables": {"p": product}}
    answer = await client.post(
        "/graphql",
        content=json.dumps([one, one]),
        headers={"Authorization": f"Bearer {customer_token}", "content-type": "application/json"},
    )
    assert answer.status_code == 400
    assert error_codes(answer.json()) == ["BAD_REQUEST"]
    await _untouched(services, product)


async def test_several_operations_need_an_operation_name(
    services: Services, product: str, shopper: Any
) -> None:
    two = f"mutation A($p: ID!) {{ {RESERVE_FIELD} }} mutation B($p: ID!) {{ {RESERVE_FIELD} }}"
    answer = await shopper(two, {"p": product})
    body = answer.json()
    assert error_codes(body) == ["GRAPHQL_VALIDATION_FAILED"]
    await _untouched(services, product)

    named = await shopper(two, {"p": product}, operation="B")
    assert named.json()["data"]["reserve"]["errors"] == []


@pytest.mark.parametrize(
    "variables",
    [{"p": None}, {"p": ["x"]}, {"p": {"$gt": ""}}, {"p": "x" * 5_000}, {}],
)
async def test_hostile_variables_are_bad_input(
    services: Services, product: str, shopper: Any, variables: dict[str, Any]
) -> None:
    answer = await shopper(f"mutation R($p: ID!) {{ {RESERVE_FIELD} }}", variables)
    assert answer.status_code == 200
    assert error_codes(answer.json()) == ["BAD_USER_INPUT"]
    await _untouched(services, product)


async def test_a_bad_scalar_literal_is_bad_input_not_an_internal_error(
    client: httpx.AsyncClient, admin_token: str
) -> None:
    # Found by the fuzzing pass: the Money scalar refusing a literal used to be masked as
    # INTERNAL_SERVER_ERROR.
    answer = await client.post(
        "/graphql",
        json={
            "query": 'mutation { createProduct(input: {name: "x", price: "", totalStock: 1}) '
            "{ product { id } } }"
        },
        headers={"Authorization": f"Bearer {admin_token}"},
    )
    body = answer.json()
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert 'money must be a decimal string such as "19.99"' in body["errors"][0]["message"]


async def test_a_requests_variables_are_coerced_once_before_execution(
    services: Services,
    product: str,
    customer_token: str,
    frozen_time: FrozenTime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With the limits on, the guard reads a signed-in mutation's cost and its first root
    field (for the user's window) from one coercion of its variables; execution then
    coerces them once more, as graphql-core always does. The two used to coerce them each."""
    calls: list[object] = []

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(args)
        return get_variable_values(*args, **kwargs)

    monkeypatch.setattr("graphql_api.cost.get_variable_values", counted)
    limited = rate_limited(services, frozen_time)
    app = create_app(limited.settings, limited)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        answer = await http.post(
            "/graphql",
            json={
                "query": f"mutation R($p: ID!) {{ {RESERVE_FIELD} }}",
                "variables": {"p": product},
            },
            headers={"Authorization": f"Bearer {customer_token}"},
        )

    assert answer.json()["data"]["reserve"]["reservation"]["id"]
    assert len(calls) == 1
