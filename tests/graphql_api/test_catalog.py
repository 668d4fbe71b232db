"""Products through the GraphQL endpoint: listing, admin mutations, and bad input."""

import asyncio
from typing import Any

import pytest
from bson import ObjectId

from models import Product
from models.stored import Database
from services import Services
from tests.conftest import GraphQL, error_codes

PRODUCT_FIELDS = """
  id name description price totalStock maxPerCustomer holdSeconds
  saleStartsAt saleEndsAt onSale available reserved sold
"""
CREATE = f"""
mutation Create($input: ProductInput!) {{
  createProduct(input: $input) {{ product {{ {PRODUCT_FIELDS} }} errors {{ code field }} }}
}}"""
UPDATE = f"""
mutation Update($id: ID!, $input: ProductUpdateInput!) {{
  updateProduct(id: $id, input: $input) {{ product {{ {PRODUCT_FIELDS} }} errors {{ code field }} }}
}}"""
RESTOCK = """
mutation Restock($id: ID!, $quantity: Int!) {
  restock(id: $id, quantity: $quantity) { product { totalStock available } errors { code field } }
}"""
PAGE = """
query Page($first: Int!, $after: String, $onSale: Boolean) {
  products(first: $first, after: $after, onSale: $onSale) {
    edges { cursor node { name } }
    pageInfo { hasNextPage endCursor }
    totalCount
  }
}"""
PHONE = {"name": "Phone", "price": "799.99", "totalStock": 10, "maxPerCustomer": 1}


async def _create(gql: GraphQL, token: str, **fields: Any) -> dict[str, Any]:
    body = await gql(CREATE, {"input": {**PHONE, **fields}}, token=token)
    assert "errors" not in body, body
    product: dict[str, Any] = body["data"]["createProduct"]["product"]
    return product


async def _snapshot(database: Database) -> list[dict[str, Any]]:
    products = await Product.find_all(database)
    return [p.model_dump() for p in sorted(products, key=lambda p: p.id)]


async def test_admin_creates_a_product(gql: GraphQL, admin_token: str, services: Services) -> None:
    product = await _create(gql, admin_token, description="  Launch edition  ")
    assert product | {"id": None} == {
        "id": None,
        "name": "Phone",
        "description": "Launch edition",
        "price": "799.99",
        "totalStock": 10,
        "maxPerCustomer": 1,
        "holdSeconds": services.settings.reservation_ttl_seconds,
        "saleStartsAt": None,
        "saleEndsAt": None,
        "onSale": True,
        "available": 10,
        "reserved": 0,
        "sold": 0,
    }
    stored = await Product.get(services.database, ObjectId(product["id"]))
    assert stored is not None
    assert stored.price_cents == 79_999


@pytest.mark.parametrize("mutation", ["create", "update", "restock"])
async def test_admin_mutations_are_refused_to_customers_and_anonymous(
    gql: GraphQL, admin_token: str, customer_token: str, mutation: str, database: Database
) -> None:
    product = await _create(gql, admin_token)
    before = await _snapshot(database)
    query, variables = {
        "create": (CREATE, {"input": PHONE}),
        "update": (UPDATE, {"id": product["id"], "input": {"totalStock": 99}}),
        "restock": (RESTOCK, {"id": product["id"], "quantity": 5}),
    }[mutation]

    as_customer = await gql(query, variables, token=customer_token)
    anonymous = await gql(query, variables)

    assert as_customer["data"] is None
    assert error_codes(as_customer) == ["FORBIDDEN"]
    assert anonymous["data"] is None
    assert error_codes(anonymous) == ["UNAUTHENTICATED"]
    assert await _snapshot(database) == before


async def test_products_paginate_with_cursors(gql: GraphQL, admin_token: str) -> None:
    for n in range(7):
        await _create(gql, admin_token, name=f"P{n}")
    seen: list[str] = []
    after = None
    pages = 0
    while True:
        body = await gql(PAGE, {"first": 3, "after": after})
        connection = body["data"]["products"]
        assert connection["totalCount"] == 7
        seen += [edge["node"]["name"] for edge in connection["edges"]]
        pages += 1
        if not connection["pageInfo"]["hasNextPage"]:
            break
        after = connection["pageInfo"]["endCursor"]
        assert after == connection["edges"][-1]["cursor"]
    assert seen == [f"P{n}" for n in range(7)]
    assert pages == 3


async def test_on_sale_filter_follows_the_sale_window(gql: GraphQL, admin_token: str) -> None:
    await _create(gql, admin_token, name="Open")
    await _create(gql, admin_token, name="Later", saleStartsAt="2999-01-01T00:00:00Z")
    await _create(
        gql,
        admin_token,
        name="Over",
        saleStartsAt="2001-01-01T00:00:00Z",
        saleEndsAt="2002-01-01T00:00:00+02:00",
    )

    async def names(on_sale: bool | None) -> list[str]:
        body = await gql(PAGE, {"first": 10, "onSale": on_sale})
        return [e["node"]["name"] for e in body["data"]["products"]["edges"]]

    assert await names(True) == ["Open"]
    assert await names(False) == ["Later", "Over"]
    assert await names(None) == ["Open", "Later", "Over"]


async def test_product_by_id_and_unknown_id(gql: GraphQL, admin_token: str) -> None:
    product = await _create(gql, admin_token)
    query = "query P($id: ID!) { product(id: $id) { name } }"
    assert (await gql(query, {"id": product["id"]}))["data"] == {"product": {"name": "Phone"}}
    assert (await gql(query, {"id": str(ObjectId())}))["data"] == {"product": None}


async def test_update_changes_only_the_given_fields(gql: GraphQL, admin_token: str) -> None:
    product = await _create(gql, admin_token, saleEndsAt="2999-01-01T00:00:00Z", holdSeconds=60)
    body = await gql(
        UPDATE,
        {"id": product["id"], "input": {"price": "10.50", "saleEndsAt": None, "holdSeconds": None}},
        token=admin_token,
    )
    updated = body["data"]["updateProduct"]["product"]
    assert updated["price"] == "10.50"
    assert updated["saleEndsAt"] is None
    assert updated["name"] == "Phone"
    assert updated["totalStock"] == 10
    assert updated["holdSeconds"] == 600


async def test_total_stock_cannot_drop_below_sold_and_held(
    gql: GraphQL, admin_token: str, customer_token: str, database: Database
) -> None:
    product = await _create(gql, admin_token, maxPerCustomer=10)
    reserve = """mutation R($p: ID!, $q: Int!) {
      reserve(productId: $p, quantity: $q) { reservation { id } } }"""
    bought = await gql(reserve, {"p": product["id"], "q": 4}, token=customer_token)
    rid = bought["data"]["reserve"]["reservation"]["id"]
    await gql(
        "mutation C($r: ID!) { checkout(reservationId: $r) { order { id } } }",
        {"r": rid},
        token=customer_token,
    )
    await gql(reserve, {"p": product["id"], "q": 2}, token=customer_token)  # held, not sold
    before = await _snapshot(database)

    body = await gql(UPDATE, {"id": product["id"], "input": {"totalStock": 5}}, token=admin_token)

    assert body["data"]["updateProduct"] == {
        "product": None,
        "errors": [{"code": "STOCK_BELOW_COMMITTED", "field": "totalStock"}],
    }
    assert await _snapshot(database) == before
    body = await gql(UPDATE, {"id": product["id"], "input": {"totalStock": 6}}, token=admin_token)
    updated = body["data"]["updateProduct"]["product"]
    assert (updated["totalStock"], updated["sold"], updated["reserved"], updated["available"]) == (
        6,
        4,
        2,
        0,
    )


async def test_sale_dates_outside_the_calendar_in_utc_are_refused_on_update(
    gql: GraphQL, admin_token: str, database: Database
) -> None:
    product = await _create(gql, admin_token)
    before = await _snapshot(database)
    for field, moment in [
        ("saleStartsAt", "0001-01-01T00:00:00+00:01"),
        ("saleEndsAt", "9999-12-31T23:59:59-00:01"),
    ]:
        body = await gql(UPDATE, {"id": product["id"], "input": {field: moment}}, token=admin_token)
        assert error_codes(body) == ["BAD_USER_INPUT"], body
        assert body["errors"][0]["extensions"]["field"] == field
    assert await _snapshot(database) == before


async def test_sale_window_stays_ordered_on_partial_updates(
    gql: GraphQL, admin_token: str, database: Database
) -> None:
    product = await _create(gql, admin_token, saleEndsAt="2030-01-01T00:00:00Z")
    before = await _snapshot(database)
    body = await gql(
        UPDATE,
        {"id": product["id"], "input": {"saleStartsAt": "2031-01-01T00:00:00Z"}},
        token=admin_token,
    )
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "saleStartsAt"
    assert await _snapshot(database) == before


async def test_concurrent_restocks_all_count(
    gql: GraphQL, admin_token: str, database: Database
) -> None:
    product = await _create(gql, admin_token)
    bodies = await asyncio.gather(
        *(gql(RESTOCK, {"id": product["id"], "quantity": 2}, token=admin_token) for _ in range(50))
    )
    assert all(b["data"]["restock"]["errors"] == [] for b in bodies)
    stored = await Product.get(database, ObjectId(product["id"]))
    assert stored is not None
    assert stored.total_stock == 10 + 100


async def test_unknown_product_in_mutations(
    gql: GraphQL, admin_token: str, database: Database
) -> None:
    missing = str(ObjectId())
    update = await gql(UPDATE, {"id": missing, "input": {"name": "X"}}, token=admin_token)
    restock = await gql(RESTOCK, {"id": missing, "quantity": 1}, token=admin_token)
    expected = [{"code": "PRODUCT_NOT_FOUND", "field": "id"}]
    assert update["data"]["updateProduct"] == {"product": None, "errors": expected}
    assert restock["data"]["restock"] == {"product": None, "errors": expected}
    assert await Product.count(database) == 0


BAD_PRODUCT_INPUT = [
    ({"name": ""}, "name"),
    ({"name": "   "}, "name"),
    ({"name": "x" * 201}, "name"),
    ({"description": "d" * 5_001}, "description"),
    ({"price": "-1.00"}, "price"),
    ({"price": "1.999"}, "price"),
    ({"price": "1000000.01"}, "price"),
    ({"totalStock": -1}, "totalStock"),
    ({"totalStock": 1_000_001}, "totalStock"),
    ({"maxPerCustomer": 0}, "maxPerCustomer"),
    ({"holdSeconds": 1}, "holdSeconds"),
    ({"saleStartsAt": "2030-01-01T00:00:00"}, "saleStartsAt"),
    ({"saleStartsAt": "2030-01-02T00:00:00Z", "saleEndsAt": "2030-01-01T00:00:00Z"}, "saleEndsAt"),
    # Within the calendar as written, outside it in UTC (MongoDB stores UTC): an
    # OverflowError, an INTERNAL_SERVER_ERROR, before.
    ({"saleStartsAt": "0001-01-01T00:00:00+14:00"}, "saleStartsAt"),
    ({"saleEndsAt": "9999-12-31T23:00:00-14:00"}, "saleEndsAt"),
]


@pytest.mark.parametrize(("fields", "field"), BAD_PRODUCT_INPUT)
async def test_invalid_product_input_is_refused_and_nothing_stored(
    gql: GraphQL, admin_token: str, fields: dict[str, Any], field: str, database: Database
) -> None:
    body = await gql(CREATE, {"input": {**PHONE, **fields}}, token=admin_token)
    assert body["data"] is None
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == field
    assert await Product.count(database) == 0


@pytest.mark.parametrize(
    "fields",
    [
        {"price": "abc"},
        {"price": 12.5},
        {"price": 12},
        {"price": "NaN"},
        {"price": "Infinity"},
        {"price": "1e9"},
        {"price": " 1.00"},
        {"totalStock": "ten"},
        {"totalStock": 2**40},
        {"totalStock": 1.5},
        {"name": None},
        {"name": ["a"]},
        {"saleEndsAt": "tomorrow"},
        {"unknownField": 1},
    ],
)
async def test_wrong_types_are_bad_user_input(
    gql: GraphQL, admin_token: str, fields: dict[str, Any], database: Database
) -> None:
    body = await gql(CREATE, {"input": {**PHONE, **fields}}, token=admin_token)
    assert body.get("data") is None
    assert set(error_codes(body)) == {"BAD_USER_INPUT"}
    assert await Product.count(database) == 0


@pytest.mark.parametrize("bad_id", ["", "123", "not-an-id", "g" * 24, "😀" * 12])
async def test_malformed_ids_are_bad_user_input(
    gql: GraphQL, admin_token: str, bad_id: str
) -> None:
    cases: list[tuple[str, dict[str, Any]]] = [
        ("query P($id: ID!) { product(id: $id) { id } }", {"id": bad_id}),
        (UPDATE, {"id": bad_id, "input": {"name": "X"}}),
        (RESTOCK, {"id": bad_id, "quantity": 1}),
    ]
    for query, variables in cases:
        body = await gql(query, variables, token=admin_token)
        assert error_codes(body) == ["BAD_USER_INPUT"], (query, body)
        assert body["errors"][0]["extensions"]["field"] == "id"


@pytest.mark.parametrize(
    ("variables", "field"),
    [
        ({"first": 0}, "first"),
        ({"first": 101}, "first"),
        ({"first": -5}, "first"),
        ({"first": 5, "after": "not a cursor"}, "after"),
        ({"first": 5, "after": "Y3Vyc29yOg=="}, "after"),
    ],
)
async def test_bad_pagination_arguments(
    gql: GraphQL, variables: dict[str, Any], field: str
) -> None:
    body = await gql(PAGE, variables)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == field


@pytest.mark.parametrize("quantity", [0, -3, 1_000_001])
async def test_restock_quantity_must_be_positive_and_bounded(
    gql: GraphQL, admin_token: str, quantity: int, database: Database
) -> None:
    product = await _create(gql, admin_token)
    before = await _snapshot(database)
    body = await gql(RESTOCK, {"id": product["id"], "quantity": quantity}, token=admin_token)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert await _snapshot(database) == before


async def test_update_refuses_null_for_required_fields(
    gql: GraphQL, admin_token: str, database: Database
) -> None:
    product = await _create(gql, admin_token)
    before = await _snapshot(database)
    body = await gql(UPDATE, {"id": product["id"], "input": {"name": None}}, token=admin_token)
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert await _snapshot(database) == before


async def test_the_shop_names_its_currency_to_anyone(gql: GraphQL) -> None:
    body = await gql("{ shop { currency } }")
    assert body["data"] == {"shop": {"currency": "USD"}}  # the CURRENCY default


KEYED_CREATE = f"""
mutation Create($input: ProductInput!, $k: String) {{
  createProduct(input: $input, idempotencyKey: $k) {{
    product {{ {PRODUCT_FIELDS} }} errors {{ code field }} }}
}}"""
KEYED_RESTOCK = """
mutation Restock($id: ID!, $quantity: Int!, $k: String) {
  restock(id: $id, quantity: $quantity, idempotencyKey: $k) {
    product { totalStock available } errors { code field } }
}"""


async def test_a_create_retried_with_its_key_makes_one_product(
    gql: GraphQL, admin_token: str, database: Database
) -> None:
    """An admin whose createProduct answer was lost (SERVICE_UNAVAILABLE after the write
    landed, a dropped connection) retries with the same key: the first product is the
    answer and no second one is made, also when the retries race. The key with another
    product's input is refused, and changes nothing."""
    first = await gql(KEYED_CREATE, {"input": PHONE, "k": "create-1"}, token=admin_token)
    made = first["data"]["createProduct"]["product"]
    retries = await asyncio.gather(
        *(gql(KEYED_CREATE, {"input": PHONE, "k": "create-1"}, token=admin_token) for _ in range(5))
    )
    assert {r["data"]["createProduct"]["product"]["id"] for r in retries} == {made["id"]}
    assert await Product.count(database) == 1

    other = await gql(
        KEYED_CREATE, {"input": {**PHONE, "totalStock": 11}, "k": "create-1"}, token=admin_token
    )
    assert other["data"]["createProduct"] == {
        "product": None,
        "errors": [{"code": "IDEMPOTENCY_KEY_REUSED", "field": "idempotencyKey"}],
    }
    fresh = await gql(KEYED_CREATE, {"input": PHONE, "k": "create-2"}, token=admin_token)
    assert fresh["data"]["createProduct"]["product"]["id"] != made["id"]
    assert await Product.count(database) == 2


async def test_a_restock_retried_with_its_key_adds_the_units_once(
    gql: GraphQL, admin_token: str, database: Database
) -> None:
    """Retries of one keyed restock (also at once) add its units once and answer the stock
    as it is; the key with another quantity or product is refused; a refused restock (over
    the maximum) leaves its key unused."""
    product = await _create(gql, admin_token)
    restock = {"id": product["id"], "quantity": 5, "k": "restock-1"}
    answers = await asyncio.gather(
        *(gql(KEYED_RESTOCK, restock, token=admin_token) for _ in range(6))
    )
    assert {a["data"]["restock"]["product"]["totalStock"] for a in answers} == {15}
    stored = await Product.get(database, ObjectId(product["id"]))
    assert stored is not None
    assert stored.total_stock == 15

    for changed in ({"quantity": 6}, {"id": (await _create(gql, admin_token))["id"]}):
        refused = await gql(KEYED_RESTOCK, {**restock, **changed}, token=admin_token)
        assert refused["data"]["restock"]["errors"] == [
            {"code": "IDEMPOTENCY_KEY_REUSED", "field": "idempotencyKey"}
        ]
    too_many = {"id": product["id"], "quantity": 1_000_000_000, "k": "restock-2"}
    assert error_codes_of(await gql(KEYED_RESTOCK, too_many, token=admin_token)) == [
        "BAD_USER_INPUT"
    ]
    later = await gql(KEYED_RESTOCK, {**too_many, "quantity": 1}, token=admin_token)
    assert later["data"]["restock"]["product"]["totalStock"] == 16
    stored = await Product.get(database, ObjectId(product["id"]))
    assert stored is not None
    assert stored.total_stock == 16


def error_codes_of(body: dict[str, Any]) -> list[str]:
    """The codes of a payload's errors, or of the top-level ones."""
    payload = (body.get("data") or {}).get("restock")
    if payload and payload["errors"]:
        return [e["code"] for e in payload["errors"]]
    return error_codes(body)
