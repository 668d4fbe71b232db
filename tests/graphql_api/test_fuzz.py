"""A fuzzing pass over the whole schema against a real server process: queries and
mutations generated from the schema (valid ones, and invalid ones in hypothesis-graphql's
negative mode), sent anonymously, as a customer and as an admin. No answer may be a 500,
carry a traceback, or hide an unexpected error (INTERNAL_SERVER_ERROR)."""

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

from flashsale.container import Services
from graphql_api.schema import build_schema
from models import Role
from tests.processes import ServerProcess, running, shared_env

SCHEMA = build_schema()._schema
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
    with pymongo.MongoClient(str(settings.mongodb_uri)) as client:
        user_id = (
            client[settings.mongodb_db]["users"]
            .insert_one(
                {"email": f"{ObjectId()}@fuzz.example", "password_hash": "-", "role": role.value}
            )
            .inserted_id
        )
    return services.accounts.tokens.issue(user_id, role)


def _check(response: httpx.Response) -> None:
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text
    body = response.json()
    codes = [error.get("extensions", {}).get("code") for error in body.get("errors") or []]
    assert all(codes), body
    assert "INTERNAL_SERVER_ERROR" not in codes, body


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
