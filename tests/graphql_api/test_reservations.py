"""Reserve, cancel, checkout and the reservation queries through the GraphQL endpoint."""

import dataclasses
from decimal import Decimal
from typing import Any

import httpx
import pytest
from bson import ObjectId
from redis.asyncio import Redis

from catalog.validation import ProductDraft
from core.settings import Settings
from flashsale.embedded import free_port
from graphql_api.app import create_app
from graphql_api.schema import build_schema
from graphql_api.strawberry_internals import graphql_schema
from models import Order, Reservation
from reservations import ReservationEngine
from services import Services
from tests.conftest import PASSWORD, GraphQL, error_codes

RESERVE = """mutation R($p: ID!, $q: Int!, $k: String) {
  reserve(productId: $p, quantity: $q, idempotencyKey: $k) {
    reservation { id productId quantity status expiresAt secondsLeft idempotencyKey
                  product { name available reserved } }
    errors { code message field available }
  }
}"""
CANCEL = """mutation C($r: ID!) { cancelReservation(reservationId: $r) {
  reservation { id status } errors { code } } }"""
CHECKOUT = """mutation K($r: ID!) { checkout(reservationId: $r) {
  order { id reservationId quantity unitPrice total product { sold available } }
  reservation { status } errors { code } } }"""

CANCEL_FIELD = """mutation C($r: ID!) { cancelReservation(reservationId: $r) {
  errors { code field } } }"""
CHECKOUT_FIELD = """mutation K($r: ID!) { checkout(reservationId: $r) { errors { code field } } }"""
SCHEMA = graphql_schema(build_schema())


async def _product(services: Services, **fields: Any) -> str:
    values: dict[str, Any] = {"name": "Phone", "price": Decimal("19.99"), "total_stock": 5}
    values.update(fields)
    product = await services.catalog.create(ProductDraft.parse(**values))
    return str(product.id)


async def test_reserve_then_checkout(gql: GraphQL, services: Services, customer_token: str) -> None:
    product = await _product(services)
    body = await gql(RESERVE, {"p": product, "q": 2, "k": "k1"}, token=customer_token)
    reservation = body["data"]["reserve"]["reservation"]
    assert reservation["status"] == "ACTIVE"
    assert reservation["quantity"] == 2
    assert 595 <= reservation["secondsLeft"] <= 600
    assert reservation["product"] == {"name": "Phone", "available": 3, "reserved": 2}

    again = await gql(RESERVE, {"p": product, "q": 2, "k": "k1"}, token=customer_token)
    assert again["data"]["reserve"]["reservation"]["id"] == reservation["id"]

    done = await gql(CHECKOUT, {"r": reservation["id"]}, token=customer_token)
    order = done["data"]["checkout"]["order"]
    assert order["unitPrice"] == "19.99"
    assert order["total"] == "39.98"
    assert order["product"] == {"sold": 2, "available": 3}
    assert done["data"]["checkout"]["reservation"]["status"] == "COMPLETED"
    orders = await gql("{ myOrders { id total } }", token=customer_token)
    assert orders["data"]["myOrders"] == [{"id": order["id"], "total": "39.98"}]


async def test_out_of_stock_is_a_typed_outcome(
    gql: GraphQL, services: Services, customer_token: str
) -> None:
    product = await _product(services, total_stock=1)
    body = await gql(RESERVE, {"p": product, "q": 2}, token=customer_token)
    assert body["data"]["reserve"] == {
        "reservation": None,
        "errors": [
            {"code": "OUT_OF_STOCK", "message": "only 1 left", "field": "quantity", "available": 1}
        ],
    }


async def test_someone_elses_reservation_is_not_found(
    gql: GraphQL, services: Services, customer_token: str, admin_token: str
) -> None:
    product = await _product(services)
    other = (await services.accounts.register("other@test.example", PASSWORD)).token
    body = await gql(RESERVE, {"p": product, "q": 1}, token=customer_token)
    rid = body["data"]["reserve"]["reservation"]["id"]

    for query in (CANCEL, CHECKOUT):
        refused = await gql(query, {"r": rid}, token=other)
        payload = next(iter(refused["data"].values()))
        assert payload["errors"] == [{"code": "RESERVATION_NOT_FOUND"}]
    lookup = "query Q($id: ID!) { reservation(id: $id) { status } }"
    assert (await gql(lookup, {"id": rid}, token=other))["data"] == {"reservation": None}
    assert (await gql(lookup, {"id": rid}, token=admin_token))["data"] == {
        "reservation": {"status": "ACTIVE"}
    }
    cancelled = await gql(CANCEL, {"r": rid}, token=customer_token)
    assert cancelled["data"]["cancelReservation"]["reservation"]["status"] == "CANCELLED"
    again = await gql(CHECKOUT, {"r": rid}, token=customer_token)
    assert again["data"]["checkout"]["errors"] == [{"code": "RESERVATION_NOT_ACTIVE"}]
    assert await Order.count(services.database) == 0


async def test_reserving_needs_a_signed_in_user(gql: GraphQL, services: Services) -> None:
    product = await _product(services)
    body = await gql(RESERVE, {"p": product, "q": 1})
    assert error_codes(body) == ["UNAUTHENTICATED"]
    counters = await services.engine.counters([ObjectId(product)])
    assert counters[ObjectId(product)].reserved == 0


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"q": 0}, "quantity"),
        ({"q": -1}, "quantity"),
        ({"q": 1_001}, "quantity"),
        ({"q": 1, "k": ""}, "idempotencyKey"),
        ({"q": 1, "k": "x" * 129}, "idempotencyKey"),
        ({"q": 1, "p": "nope"}, "productId"),
    ],
)
async def test_bad_reserve_input_changes_nothing(
    gql: GraphQL, services: Services, customer_token: str, variables: dict[str, Any], field: str
) -> None:
    product = await _product(services)
    body = await gql(RESERVE, {"p": product, **variables}, token=customer_token)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == field
    assert (await services.engine.counters([ObjectId(product)]))[ObjectId(product)].reserved == 0
    assert await Reservation.count(services.database) == 0


async def test_unknown_product_and_malformed_reservation_ids(
    gql: GraphQL, customer_token: str
) -> None:
    body = await gql(RESERVE, {"p": str(ObjectId()), "q": 1}, token=customer_token)
    assert body["data"]["reserve"]["errors"][0]["code"] == "PRODUCT_NOT_FOUND"
    for bad in ["", "abc", str(ObjectId()), "z" * 48]:
        refused = await gql(CHECKOUT, {"r": bad}, token=customer_token)
        assert error_codes(refused) == ["BAD_USER_INPUT"], bad
    missing = str(ObjectId()) + str(ObjectId())
    body = await gql(CANCEL, {"r": missing}, token=customer_token)
    assert body["data"]["cancelReservation"]["errors"] == [{"code": "RESERVATION_NOT_FOUND"}]


async def test_each_payload_error_names_an_argument_of_its_mutation(
    gql: GraphQL, services: Services, customer_token: str
) -> None:
    """`field` is the argument the client sent, as the schema spells it (reserve's unknown
    product said `id`, cancel's and checkout's unknown hold `id` too)."""
    mutation = SCHEMA.mutation_type
    assert mutation is not None
    product = await _product(services, total_stock=1)
    missing = str(ObjectId()) + str(ObjectId())
    await gql(RESERVE, {"p": product, "q": 1, "k": "once"}, token=customer_token)
    sent: list[tuple[str, str, dict[str, Any], str, str]] = [
        ("reserve", RESERVE, {"p": str(ObjectId()), "q": 1}, "PRODUCT_NOT_FOUND", "productId"),
        ("reserve", RESERVE, {"p": product, "q": 2}, "OUT_OF_STOCK", "quantity"),
        (
            "reserve",
            RESERVE,
            {"p": product, "q": 2, "k": "once"},
            "IDEMPOTENCY_KEY_REUSED",
            "idempotencyKey",
        ),
        (
            "cancelReservation",
            CANCEL_FIELD,
            {"r": missing},
            "RESERVATION_NOT_FOUND",
            "reservationId",
        ),
        ("checkout", CHECKOUT_FIELD, {"r": missing}, "RESERVATION_NOT_FOUND", "reservationId"),
    ]
    for name, document, variables, code, field in sent:
        body = await gql(document, variables, token=customer_token)
        [error] = body["data"][name]["errors"]
        assert (error["code"], error["field"]) == (code, field), body
        assert field in mutation.fields[name].args


async def test_redis_down_is_service_unavailable_not_a_crash(
    services: Services, settings: Settings, customer_token: str
) -> None:
    product = await _product(services)
    dead = Redis.from_url(f"redis://127.0.0.1:{free_port()}/0", socket_connect_timeout=1)
    engine = ReservationEngine(dead, services.mongo[settings.mongodb_db], default_hold_seconds=600)
    cut_off = dataclasses.replace(services, redis=dead, engine=engine)
    transport = httpx.ASGITransport(app=create_app(settings, cut_off))
    try:
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            gql = GraphQL(http)
            read = await gql("query P($p: ID!) { product(id: $p) { available } }", {"p": product})
            reserve = await gql(RESERVE, {"p": product, "q": 1}, token=customer_token)
    finally:
        await dead.aclose()
    # The stock figure comes from MongoDB's records while Redis is out of reach.
    assert read["data"] == {"product": {"available": 5}}, read
    assert "errors" not in read
    assert reserve["data"]["reserve"]["errors"][0]["code"] == "SERVICE_UNAVAILABLE"
    assert await Reservation.count(services.database) == 0
