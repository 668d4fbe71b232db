"""A deleted or disabled user's token stops working for every operation, within the
liveness check's few seconds (accounts.liveness.CHECK_SECONDS)."""

import dataclasses
from collections.abc import AsyncIterator
from decimal import Decimal
from typing import Any

import httpx
import pytest_asyncio

from accounts.liveness import CHECK_SECONDS, Liveness
from accounts.service import AccountService
from catalog.validation import ProductDraft
from core.settings import Settings
from graphql_api.app import create_app
from models import User
from models.stored import Database
from services import Services
from tests.conftest import PASSWORD, GraphQL

EMAIL = "leaving@test.example"
RESERVE = """mutation($p: ID!) { reserve(productId: $p, quantity: 1) {
  reservation { id } errors { code } } }"""
# Every operation a signed-in customer has, by name.
OPERATIONS = {
    "reserve": RESERVE,
    "cancelReservation": "mutation($r: ID!) { cancelReservation(reservationId: $r)"
    " { errors { code } } }",
    "checkout": "mutation($r: ID!) { checkout(reservationId: $r) { errors { code } } }",
    "reservation": "query($r: ID!) { reservation(id: $r) { id } }",
    "myReservations": "{ myReservations { id } }",
    "myOrders": "{ myOrders { id } }",
    "me": "{ me { id } }",
}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclasses.dataclass
class Shop:
    gql: GraphQL
    accounts: AccountService
    clock: Clock
    product: str


@pytest_asyncio.fixture(loop_scope="session")
async def shop(services: Services, settings: Settings) -> AsyncIterator[Shop]:
    clock = Clock()
    accounts = AccountService(
        services.database, services.accounts.tokens, services.accounts._passwords
    )
    accounts.liveness = Liveness(accounts._disabled, clock=clock)
    app = create_app(settings, dataclasses.replace(services, accounts=accounts))
    product = await services.catalog.create(
        ProductDraft.parse(name="Bag", price=Decimal("5.00"), total_stock=50, max_per_customer=50)
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield Shop(GraphQL(http), accounts, clock, str(product.id))


async def refusals(shop: Shop, token: str) -> dict[str, Any]:
    """For each operation: the UNAUTHENTICATED reason it answered, or "OK"."""
    held = await shop.gql(RESERVE, {"p": shop.product}, token=token)
    hold = ((held.get("data") or {}).get("reserve") or {}).get("reservation") or {}
    answers: dict[str, Any] = {}
    for name, query in OPERATIONS.items():
        body = await shop.gql(query, {"p": shop.product, "r": hold.get("id", "x")}, token=token)
        reasons = [
            e["extensions"].get("reason")
            for e in body.get("errors") or []
            if e["extensions"]["code"] == "UNAUTHENTICATED"
        ]
        answers[name] = reasons[0] if reasons else "OK"
    return answers


async def test_a_deleted_users_token_stops_working_for_everything(
    shop: Shop, database: Database
) -> None:
    token = (await shop.accounts.register(EMAIL, PASSWORD)).token
    everything_ok = dict.fromkeys(OPERATIONS, "OK")
    assert await refusals(shop, token) == everything_ok

    await User.collection(database).delete_one({"email": EMAIL})
    # Within CHECK_SECONDS of the last check this process still trusts the token (only
    # `me`, which reads the user anyway, knows at once)...
    shop.clock.now += CHECK_SECONDS / 2
    assert await refusals(shop, token) == everything_ok | {"me": "unknown_user"}
    # ...and after it, nothing works.
    shop.clock.now += CHECK_SECONDS
    assert await refusals(shop, token) == dict.fromkeys(OPERATIONS, "unknown_user")


async def test_a_disabled_user_is_refused_at_once_and_can_be_enabled_again(shop: Shop) -> None:
    token = (await shop.accounts.register(EMAIL, PASSWORD)).token
    assert await refusals(shop, token) == dict.fromkeys(OPERATIONS, "OK")

    assert await shop.accounts.set_disabled(EMAIL, True) is not None
    assert await refusals(shop, token) == dict.fromkeys(OPERATIONS, "disabled")
    login = await shop.gql(
        "mutation($e: String!, $p: String!) { login(email: $e, password: $p)"
        " { token errors { code } } }",
        {"e": EMAIL, "p": PASSWORD},
    )
    assert login["data"]["login"] == {"token": None, "errors": [{"code": "INVALID_CREDENTIALS"}]}

    await shop.accounts.set_disabled(EMAIL, False)
    assert await refusals(shop, token) == dict.fromkeys(OPERATIONS, "OK")
