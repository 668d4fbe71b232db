"""Register, log in, `me`, and every way a token can be wrong."""

import asyncio
import json
from datetime import UTC, datetime, timedelta

import httpx
import jwt
import pytest
from bson import ObjectId

from accounts.errors import InvalidCredentials
from accounts.tokens import TokenService
from core.settings import ConfigurationError, load_settings
from graphql_api.app import create_app
from models import Role, User
from models.stored import Database
from services import Services
from tests.conftest import PASSWORD, FrozenTime, GraphQL, error_codes, rate_limited

REGISTER = """
mutation Register($email: String!, $password: String!) {
  register(email: $email, password: $password) {
    token user { id email role } errors { code message field }
  }
}"""
LOGIN = """
mutation Login($email: String!, $password: String!) {
  login(email: $email, password: $password) {
    token user { email role } errors { code field }
  }
}"""
ME = "{ me { id email role } }"


async def test_register_then_me_with_the_token(gql: GraphQL) -> None:
    body = await gql(REGISTER, {"email": "Ann@Example.com", "password": PASSWORD})
    payload = body["data"]["register"]
    assert payload["errors"] == []
    assert payload["user"]["email"] == "ann@example.com"
    assert payload["user"]["role"] == "CUSTOMER"

    me = await gql(ME, token=payload["token"])
    assert me["data"]["me"] == payload["user"]


async def test_me_is_null_when_anonymous(gql: GraphQL) -> None:
    body = await gql(ME)
    assert body["data"] == {"me": None}
    assert "errors" not in body


async def test_duplicate_email_is_refused_whatever_its_case(
    gql: GraphQL, database: Database
) -> None:
    await gql(REGISTER, {"email": "bob@example.com", "password": PASSWORD})
    body = await gql(REGISTER, {"email": "BOB@example.com", "password": "another password"})
    assert body["data"]["register"] == {
        "token": None,
        "user": None,
        "errors": [
            {
                "code": "EMAIL_TAKEN",
                "message": "bob@example.com is already registered",
                "field": "email",
            }
        ],
    }
    assert await User.count(database, {"email": "bob@example.com"}) == 1


async def test_concurrent_registrations_of_one_email_create_one_user(
    gql: GraphQL, database: Database
) -> None:
    bodies = await asyncio.gather(
        *(gql(REGISTER, {"email": "race@example.com", "password": PASSWORD}) for _ in range(20))
    )
    winners = [b for b in bodies if b["data"]["register"]["token"]]
    losers = [b["data"]["register"]["errors"][0]["code"] for b in bodies if b not in winners]
    assert len(winners) == 1
    assert losers == ["EMAIL_TAKEN"] * 19
    assert await User.count(database, {"email": "race@example.com"}) == 1


async def test_login_returns_a_working_token(gql: GraphQL) -> None:
    await gql(REGISTER, {"email": "cat@example.com", "password": PASSWORD})
    body = await gql(LOGIN, {"email": "CAT@example.com", "password": PASSWORD})
    payload = body["data"]["login"]
    assert payload["user"] == {"email": "cat@example.com", "role": "CUSTOMER"}
    assert (await gql(ME, token=payload["token"]))["data"]["me"]["email"] == "cat@example.com"


@pytest.mark.parametrize(
    ("email", "password"),
    [
        ("dan@example.com", "wrong password"),
        ("nobody@example.com", PASSWORD),
        ("not an email", PASSWORD),
    ],
)
async def test_bad_credentials_all_look_the_same(gql: GraphQL, email: str, password: str) -> None:
    await gql(REGISTER, {"email": "dan@example.com", "password": PASSWORD})
    body = await gql(LOGIN, {"email": email, "password": password})
    assert body["data"]["login"] == {
        "token": None,
        "user": None,
        "errors": [{"code": "INVALID_CREDENTIALS", "field": None}],
    }


@pytest.mark.parametrize(
    ("email", "password", "field"),
    [
        ("not-an-email", PASSWORD, "email"),
        ("a@b", PASSWORD, "email"),
        ("x" * 300 + "@example.com", PASSWORD, "email"),
        ("eve@example.com", "short", "password"),
        ("eve@example.com", "p" * 129, "password"),
    ],
)
async def test_invalid_registration_input_is_bad_user_input(
    gql: GraphQL, email: str, password: str, field: str, database: Database
) -> None:
    body = await gql(REGISTER, {"email": email, "password": password})
    assert body["data"] is None
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == field
    assert await User.count(database) == 0


async def test_wrong_types_are_refused_before_anything_runs(
    gql: GraphQL, database: Database
) -> None:
    body = await gql(REGISTER, {"email": 42, "password": ["x"]})
    assert set(error_codes(body)) == {"BAD_USER_INPUT"}
    assert await User.count(database) == 0


def _forge(secret: str, **claims: object) -> str:
    now = datetime.now(UTC)
    payload = {"sub": str(ObjectId()), "role": "ADMIN", "iat": now, "exp": now + timedelta(hours=1)}
    payload.update(claims)
    return jwt.encode(payload, secret, algorithm="HS256")


@pytest.mark.parametrize(
    ("token", "reason"),
    [
        ("garbage", "invalid"),
        (_forge("someone else's secret that is long enough"), "invalid"),
        (jwt.encode({"sub": "x", "role": "ADMIN"}, key=None, algorithm="none"), "invalid"),
    ],
)
async def test_forged_tokens_are_unauthenticated(gql: GraphQL, token: str, reason: str) -> None:
    body = await gql(ME, token=token)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["extensions"]["reason"] == reason


async def test_expired_token_is_unauthenticated(gql: GraphQL, services: Services) -> None:
    session = await services.accounts.register("old@example.com", PASSWORD)
    assert session.user.id is not None
    tokens = TokenService(services.settings.jwt_secret, ttl_seconds=60)
    stale = tokens.issue(session.user.id, Role.CUSTOMER, now=datetime.now(UTC) - timedelta(hours=2))
    body = await gql(ME, token=stale)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["extensions"]["reason"] == "expired"


async def test_token_of_a_deleted_user_is_unauthenticated(gql: GraphQL, services: Services) -> None:
    session = await services.accounts.register("gone@example.com", PASSWORD)
    await session.user.delete(services.database)
    body = await gql(ME, token=session.token)
    assert error_codes(body) == ["UNAUTHENTICATED"]
    assert body["errors"][0]["extensions"]["reason"] == "unknown_user"


async def test_non_bearer_authorization_is_unauthenticated(gql: GraphQL) -> None:
    response = await gql.http.post(
        "/graphql", json={"query": ME}, headers={"Authorization": "Basic YWxhZGRpbjpvcGVu"}
    )
    assert error_codes(response.json()) == ["UNAUTHENTICATED"]


@pytest.mark.parametrize(
    ("password", "message"),
    [
        ("12345678", "password: is one of the most common passwords"),
        ("Password", "password: is one of the most common passwords"),
        (" " * 8, "password: must not be only whitespace"),
        ("\x00" * 8, "password: must not contain control characters"),
    ],
)
async def test_weak_passwords_are_refused_and_create_nobody(
    gql: GraphQL, password: str, message: str, database: Database
) -> None:
    body = await gql(REGISTER, {"email": "weak@example.com", "password": password})
    assert body["data"] is None
    assert error_codes(body) == ["BAD_USER_INPUT"]
    assert body["errors"][0]["extensions"]["field"] == "password"
    assert body["errors"][0]["message"].startswith(message)
    assert await User.count(database) == 0


async def test_a_lone_surrogate_in_a_login_password_is_refused_or_wrong_credentials(
    gql: GraphQL, services: Services
) -> None:
    await gql(REGISTER, {"email": "sur@example.com", "password": PASSWORD})
    # Escaped as JSON allows ("\ud800"): UTF-8 itself cannot carry a lone surrogate. Over
    # HTTP the body is refused before anything runs; a login that gets one by another way
    # (a WebSocket frame) is a wrong password, not a crash.
    variables = {"email": "sur@example.com", "password": "x\ud800yz"}
    response = await gql.http.post(
        "/graphql",
        content=json.dumps({"query": LOGIN, "variables": variables}),
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 400
    assert response.json()["errors"][0]["extensions"]["code"] == "BAD_REQUEST"
    with pytest.raises(InvalidCredentials):
        await services.accounts.login("sur@example.com", "x\ud800yz")


async def test_login_is_limited_per_email_from_any_address_with_or_without_account(
    services: Services, frozen_time: FrozenTime
) -> None:
    limited = rate_limited(services, frozen_time, rate_limit_login_per_email="2/minute")
    await limited.accounts.register("kim@example.com", PASSWORD)
    refusals = []
    for email in ("kim@example.com", "nobody@example.com"):
        answers = []
        for n, spelled in enumerate((email, f" {email.upper()}", email)):
            app = create_app(limited.settings, limited)
            transport = httpx.ASGITransport(app=app, client=(f"198.51.100.{n + 1}", 40_000))
            async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
                answers.append(
                    await GraphQL(http)(LOGIN, {"email": spelled, "password": "wrong password"})
                )
        assert [a["data"]["login"]["errors"][0]["code"] for a in answers[:2] if a["data"]] == [
            "INVALID_CREDENTIALS"
        ] * 2
        assert answers[2]["data"] is None
        assert error_codes(answers[2]) == ["RATE_LIMITED"]
        refusals.append(answers[2]["errors"][0])
    assert refusals[0]["message"] == refusals[1]["message"]
    assert refusals[0]["extensions"] == refusals[1]["extensions"]
    assert refusals[0]["extensions"]["limit"] == 2

    frozen_time.advance(61)
    app = create_app(limited.settings, limited)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://test"
    ) as http:
        body = await GraphQL(http)(LOGIN, {"email": "kim@example.com", "password": PASSWORD})
    assert body["data"]["login"]["user"] == {"email": "kim@example.com", "role": "CUSTOMER"}


def test_the_login_quota_is_validated() -> None:
    with pytest.raises(ConfigurationError, match="RATE_LIMIT_LOGIN_PER_EMAIL"):
        load_settings(rate_limit_login_per_email="often", _env_file=None)
    with pytest.raises(ConfigurationError, match="RATE_LIMIT_LOGIN_PER_EMAIL"):
        load_settings(rate_limit_login_per_email="0/minute", _env_file=None)
