"""Rate limits through the real app: per address on all HTTP traffic, per user on reserve and
checkout, the query cost budget, and what happens when Redis is away. Time is moved by hand."""

import dataclasses
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from decimal import Decimal
from typing import Any

import httpx
from bson import ObjectId
from redis.asyncio import Redis

from catalog.validation import ProductDraft
from flashsale.embedded import free_port
from graphql_api.app import create_app
from ratelimit import build_rate_limits
from services import Services
from tests.conftest import FrozenTime, error_codes, rate_limited

QUERY = "{ products(first: 5) { totalCount } }"
RESERVE = """mutation R($p: ID!) { reserve(productId: $p, quantity: 1) {
  reservation { id } errors { code } } }"""
CHECKOUT = (
    """mutation C($r: ID!) { checkout(reservationId: $r) { order { id } errors { code } } }"""
)
STOCK = "query S($p: ID!) { product(id: $p) { available reserved } }"


@asynccontextmanager
async def serving(
    services: Services, address: str = "203.0.113.7"
) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(services.settings, services)
    transport = httpx.ASGITransport(app=app, client=(address, 40_000))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


async def _post(
    http: httpx.AsyncClient, query: str, variables: dict[str, Any] | None = None, /, **headers: str
) -> httpx.Response:
    return await http.post(
        "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
    )


async def _product(services: Services) -> str:
    draft = ProductDraft.parse(
        name="Phone", price=Decimal("9.99"), total_stock=10, max_per_customer=10
    )
    return str((await services.catalog.create(draft)).id)


# Per address ------------------------------------------------------------------------------


async def test_over_the_address_quota_is_429_with_retry_after_and_ratelimit_fields(
    services: Services, frozen_time: FrozenTime
) -> None:
    limited = rate_limited(services, frozen_time, rate_limit_per_ip="3/minute")
    async with serving(limited) as http:
        answers = []
        for _ in range(3):
            answers.append(await _post(http, QUERY))
            frozen_time.advance(5)
        assert [a.status_code for a in answers] == [200, 200, 200]
        assert [a.headers["ratelimit"] for a in answers] == [
            '"ip";r=2;t=60',
            '"ip";r=1;t=55',
            '"ip";r=0;t=50',
        ]
        assert {a.headers["ratelimit-policy"] for a in answers} == {'"ip";q=3;w=60'}
        assert all("retry-after" not in a.headers for a in answers)

        refused = await _post(http, QUERY)  # t=15: the first request leaves at t=60
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "45"
        assert refused.headers["ratelimit"] == '"ip";r=0;t=45'
        assert refused.headers["ratelimit-policy"] == '"ip";q=3;w=60'
        assert refused.headers["content-type"] == "application/json"
        assert refused.headers["x-request-id"]
        (error,) = refused.json()["errors"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["retryAfter"] == 45

        # Only the API counts: GraphiQL (GET /graphql) does, pages and probes do not.
        assert (await http.get("/graphql", headers={"accept": "text/html"})).status_code == 429
        for free in ("/static/graphiql/graphiql.min.css", "/", "/admin", "/healthz", "/readyz"):
            answer = await http.get(free)
            assert answer.status_code == 200, free
            assert "ratelimit" not in answer.headers

        frozen_time.advance(44.9)  # t=59.9: the first request is still in the window
        assert (await _post(http, QUERY)).status_code == 429
        frozen_time.advance(0.1)  # t=60, as Retry-After said: the window has slid past it
        assert (await _post(http, QUERY)).status_code == 200
        assert (await _post(http, QUERY)).status_code == 429


async def test_another_address_is_unaffected(services: Services, frozen_time: FrozenTime) -> None:
    limited = rate_limited(services, frozen_time, rate_limit_per_ip="1/minute")
    async with serving(limited, "203.0.113.8") as first, serving(limited, "203.0.113.9") as second:
        assert (await _post(first, QUERY)).status_code == 200
        assert (await _post(first, QUERY)).status_code == 429
        assert (await _post(second, QUERY)).status_code == 200


async def test_ipv6_clients_are_counted_per_64_block(
    services: Services, frozen_time: FrozenTime
) -> None:
    limited = rate_limited(services, frozen_time, rate_limit_per_ip="1/minute")
    async with (
        serving(limited, "2001:db8:1:2::a") as one,
        serving(limited, "2001:db8:1:2::b") as same_block,
    ):
        assert (await _post(one, QUERY)).status_code == 200
        assert (await _post(same_block, QUERY)).status_code == 429
    async with serving(limited, "2001:db8:1:3::a") as other_block:
        assert (await _post(other_block, QUERY)).status_code == 200


async def test_forwarded_for_is_ignored_unless_the_peer_is_a_trusted_proxy(
    services: Services, frozen_time: FrozenTime
) -> None:
    untrusting = rate_limited(services, frozen_time, rate_limit_per_ip="1/minute")
    async with serving(untrusting, "198.51.100.1") as http:
        assert (await _post(http, QUERY, **{"X-Forwarded-For": "192.0.2.1"})).status_code == 200
        # A client cannot dodge its quota by inventing a forwarded address.
        spoofed = await _post(http, QUERY, **{"X-Forwarded-For": "192.0.2.2"})
        assert spoofed.status_code == 429

    behind_proxy = rate_limited(
        services, frozen_time, rate_limit_per_ip="1/minute", trusted_proxies="10.0.0.0/8"
    )
    async with serving(behind_proxy, "10.1.1.1") as proxy:
        # The client's own claim (left) is not believed; the proxy's hop (right) is.
        first = await _post(proxy, QUERY, **{"X-Forwarded-For": "192.0.2.50, 192.0.2.10"})
        assert first.status_code == 200
        same_client = await _post(proxy, QUERY, **{"X-Forwarded-For": "192.0.2.99, 192.0.2.10"})
        assert same_client.status_code == 429
        other_client = await _post(proxy, QUERY, **{"X-Forwarded-For": "192.0.2.11"})
        assert other_client.status_code == 200


# Per user on reserve and checkout ---------------------------------------------------------


async def test_the_sixth_reserve_in_a_minute_is_rate_limited_and_changes_nothing(
    services: Services, frozen_time: FrozenTime, customer_token: str, admin_token: str
) -> None:
    limited = rate_limited(services, frozen_time)  # the defaults: 5 reserves a minute
    product = await _product(services)
    bearer = {"Authorization": f"Bearer {customer_token}"}
    async with serving(limited) as http:
        for _ in range(5):
            ok = await _post(http, RESERVE, {"p": product}, **bearer)
            assert ok.json()["data"]["reserve"]["errors"] == []
            frozen_time.advance(2)

        refused = await _post(http, RESERVE, {"p": product}, **bearer)
        assert refused.status_code == 200  # a field error: the request itself was allowed
        body = refused.json()
        assert body["data"] is None
        (error,) = body["errors"]
        assert error["path"] == ["reserve"]
        assert error["extensions"]["code"] == "RATE_LIMITED"
        assert error["extensions"]["retryAfter"] == 50  # the first reserve is out at t=60
        assert (error["extensions"]["limit"], error["extensions"]["window"]) == (5, 60)

        stock = (await _post(http, STOCK, {"p": product})).json()["data"]["product"]
        assert stock == {"available": 5, "reserved": 5}

        # Another user is unaffected.
        other = await _post(http, RESERVE, {"p": product}, Authorization=f"Bearer {admin_token}")
        assert other.json()["data"]["reserve"]["errors"] == []


async def test_checkout_has_its_own_window(
    services: Services, frozen_time: FrozenTime, customer_token: str
) -> None:
    limited = rate_limited(services, frozen_time, rate_limit_reserve_per_user="2/minute")
    product = await _product(services)
    bearer = {"Authorization": f"Bearer {customer_token}"}
    async with serving(limited) as http:
        holds = []
        for _ in range(2):
            answer = await _post(http, RESERVE, {"p": product}, **bearer)
            holds.append(answer.json()["data"]["reserve"]["reservation"]["id"])
        assert error_codes((await _post(http, RESERVE, {"p": product}, **bearer)).json()) == [
            "RATE_LIMITED"
        ]
        # Used-up reserves do not stop the shopper paying for what they hold.
        for hold in holds:
            paid = await _post(http, CHECKOUT, {"r": hold}, **bearer)
            assert paid.json()["data"]["checkout"]["errors"] == []
        third = await _post(http, CHECKOUT, {"r": holds[0]}, **bearer)
        assert error_codes(third.json()) == ["RATE_LIMITED"]


async def test_anonymous_reserve_is_unauthenticated_not_counted(
    services: Services, frozen_time: FrozenTime
) -> None:
    limited = rate_limited(services, frozen_time, rate_limit_reserve_per_user="1/minute")
    product = await _product(services)
    async with serving(limited) as http:
        for _ in range(3):
            answer = await _post(http, RESERVE, {"p": product})
            assert error_codes(answer.json()) == ["UNAUTHENTICATED"]


# Query cost -------------------------------------------------------------------------------


async def test_every_answer_reports_its_cost_and_the_budget_left(
    services: Services, frozen_time: FrozenTime
) -> None:
    limited = rate_limited(
        services, frozen_time, query_cost_budget=100, query_cost_restore_rate=10, query_max_cost=100
    )
    query = "{ products(first: 10) { edges { node { id name } } } }"  # 1 + 10 * (1 + 1 + 2)
    async with serving(limited) as http:
        costs = []
        for _ in range(2):
            costs.append((await _post(http, query)).json()["extensions"]["cost"])
        assert costs == [
            {
                "requestedQueryCost": 41,
                "maximumQueryCost": 100,
                "throttleStatus": {
                    "maximumAvailable": 100,
                    "currentlyAvailable": available,
                    "restoreRate": 10,
                },
            }
            for available in (59, 18)
        ]

        refused = await _post(http, query)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "3"  # 23 points short at 10 per second
        body = refused.json()
        assert body["data"] is None
        assert error_codes(body) == ["RATE_LIMITED"]
        assert body["errors"][0]["extensions"]["retryAfter"] == 3
        assert body["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 18

        frozen_time.advance(3)
        assert (await _post(http, query)).status_code == 200


async def test_the_budget_is_per_user_when_signed_in(
    services: Services, frozen_time: FrozenTime, customer_token: str
) -> None:
    limited = rate_limited(services, frozen_time, query_cost_budget=50, query_max_cost=50)
    query = "{ products(first: 10) { edges { node { id name } } } }"
    async with serving(limited) as http:
        assert (await _post(http, query)).status_code == 200
        assert (await _post(http, query)).status_code == 429
        signed_in = await _post(http, query, Authorization=f"Bearer {customer_token}")
        assert signed_in.status_code == 200


async def test_a_query_over_the_maximum_cost_is_refused_before_it_runs(
    services: Services, frozen_time: FrozenTime, customer_token: str
) -> None:
    limited = rate_limited(services, frozen_time, query_max_cost=10)
    product = await _product(services)
    reserve = """mutation R($p: ID!) { reserve(productId: $p, quantity: 1) {
      reservation { id status product { id name available reserved sold } } errors { code } } }"""
    async with serving(limited) as http:
        refused = await _post(
            http, reserve, {"p": product}, Authorization=f"Bearer {customer_token}"
        )
        body = refused.json()
        assert refused.status_code == 200
        assert body["data"] is None
        assert error_codes(body) == ["QUERY_TOO_COMPLEX"]
        assert body["errors"][0]["extensions"]["cost"] == 12
        assert body["extensions"]["cost"]["requestedQueryCost"] == 12
        stock = (await _post(http, STOCK, {"p": product})).json()["data"]["product"]
        assert stock == {"available": 10, "reserved": 0}


async def test_huge_first_values_are_too_complex(
    services: Services, frozen_time: FrozenTime
) -> None:
    limited = rate_limited(services, frozen_time)
    async with serving(limited) as http:
        for first in (5_000, 2_147_483_647):
            answer = await _post(
                http,
                "query Q($n: Int!) { products(first: $n) { edges { node { id } } } }",
                {"n": first},
            )
            assert error_codes(answer.json()) == ["QUERY_TOO_COMPLEX"]
        too_big = await _post(http, "{ products(first: 2147483648) { totalCount } }")
        assert error_codes(too_big.json()) == ["GRAPHQL_VALIDATION_FAILED"]


# When Redis is away -----------------------------------------------------------------------


async def test_without_redis_reads_go_through_and_writes_are_refused(
    services: Services, frozen_time: FrozenTime, customer_token: str
) -> None:
    dead = Redis(port=free_port(), socket_connect_timeout=0.5)
    try:
        away = dataclasses.replace(
            services,
            rate_limits=build_rate_limits(
                dead,
                enabled=True,
                per_ip="1/minute",
                per_user_write="1/minute",
                cost_budget=100,
                cost_restore_rate=10,
            ),
        )
        product = await _product(services)
        async with serving(away) as http:
            for _ in range(3):  # over every quota, were it counted
                read = await _post(http, STOCK, {"p": product})
                assert read.status_code == 200
                assert read.json()["data"]["product"] == {"available": 10, "reserved": 0}
                assert "ratelimit" not in read.headers
                assert read.json()["extensions"]["cost"]["throttleStatus"] is None

            write = await _post(
                http, RESERVE, {"p": product}, Authorization=f"Bearer {customer_token}"
            )
            assert error_codes(write.json()) == ["SERVICE_UNAVAILABLE"]
            login = await _post(
                http, 'mutation { login(email: "a@b.example", password: "x") { token } }'
            )
            assert error_codes(login.json()) == ["SERVICE_UNAVAILABLE"]
            stock = (await _post(http, STOCK, {"p": product})).json()["data"]["product"]
            assert stock == {"available": 10, "reserved": 0}
    finally:
        await dead.aclose()


# One round trip for all of a request's limits (see tests/graphql_api/test_round_trips.py) --


async def test_a_request_refused_by_its_address_uses_none_of_the_other_limits(
    services: Services, frozen_time: FrozenTime, customer_token: str
) -> None:
    limited = rate_limited(
        services,
        frozen_time,
        rate_limit_per_ip="1/minute",
        rate_limit_reserve_per_user="2/minute",
        query_cost_budget=10,
        query_max_cost=10,
        query_cost_restore_rate=1,
    )
    product = await _product(services)
    bearer = {"Authorization": f"Bearer {customer_token}"}
    async with serving(limited, "203.0.113.20") as first, serving(limited, "203.0.113.21") as other:
        ok = await _post(first, RESERVE, {"p": product}, **bearer)
        assert ok.json()["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 5
        refused = await _post(first, RESERVE, {"p": product}, **bearer)
        assert refused.status_code == 429
        assert refused.headers["ratelimit"] == '"ip";r=0;t=60'
        assert "data" not in refused.json()  # the address refusal, not the operation's
        # Neither the cost budget nor the user's window counted the refused request.
        second = (await _post(other, RESERVE, {"p": product}, **bearer)).json()
        assert second["data"]["reserve"]["errors"] == []
        assert second["extensions"]["cost"]["throttleStatus"]["currentlyAvailable"] == 0
    async with serving(limited, "203.0.113.22") as third:
        assert error_codes((await _post(third, RESERVE, {"p": product}, **bearer)).json()) == [
            "RATE_LIMITED"
        ]
    stock = (await services.engine.counters([ObjectId(product)]))[ObjectId(product)]
    assert stock.reserved == 2


async def test_a_request_refused_by_its_cost_is_not_counted_in_the_user_window(
    services: Services, frozen_time: FrozenTime, customer_token: str
) -> None:
    limited = rate_limited(
        services,
        frozen_time,
        rate_limit_reserve_per_user="2/minute",
        query_cost_budget=10,
        query_max_cost=10,
        query_cost_restore_rate=1,
    )
    product = await _product(services)
    bearer = {"Authorization": f"Bearer {customer_token}"}
    async with serving(limited) as http:
        ok = await _post(http, RESERVE, {"p": product}, **bearer)  # costs 5 of the 10
        assert ok.json()["data"]["reserve"]["errors"] == []
        costlier = """mutation R($p: ID!) { reserve(productId: $p, quantity: 1) {
          reservation { id status quantity } errors { code } } }"""  # costs 7
        refused = await _post(http, costlier, {"p": product}, **bearer)
        assert refused.status_code == 429
        assert "budget" in refused.json()["errors"][0]["message"]
        frozen_time.advance(5)
        # The user's second reserve of the minute is still there.
        again = await _post(http, RESERVE, {"p": product}, **bearer)
        assert again.json()["data"]["reserve"]["errors"] == []
        assert error_codes((await _post(http, RESERVE, {"p": product}, **bearer)).json()) == [
            "RATE_LIMITED"
        ]


async def test_each_reserve_of_a_document_is_counted_once_in_the_user_window(
    services: Services, frozen_time: FrozenTime, customer_token: str
) -> None:
    limited = rate_limited(services, frozen_time, rate_limit_reserve_per_user="2/minute")
    product = await _product(services)
    bearer = {"Authorization": f"Bearer {customer_token}"}
    twice = """mutation R($p: ID!, $skip: Boolean!) {
      skipped: reserve(productId: $p, quantity: 1) @skip(if: $skip) { errors { code } }
      ...Twice }
    fragment Twice on Mutation {
      a: reserve(productId: $p, quantity: 1) { errors { code } }
      b: reserve(productId: $p, quantity: 1) { errors { code } }
      c: reserve(productId: $p, quantity: 1) { errors { code } } }"""
    async with serving(limited) as http:
        body = (await _post(http, twice, {"p": product, "skip": True}, **bearer)).json()
    # The skipped field is not counted; a and b are (the first in the guard's round trip);
    # c is refused and the remaining field errors null the whole mutation's data.
    assert [e["path"] for e in body["errors"]] == [["c"]]
    assert error_codes(body) == ["RATE_LIMITED"]
    stock = (await services.engine.counters([ObjectId(product)]))[ObjectId(product)]
    assert stock.reserved == 2
