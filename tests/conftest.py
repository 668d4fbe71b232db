"""Shared fixtures: real Redis and MongoDB-protocol servers over TCP.

By default the suite starts its own (the embedded default: the system `redis-server` and
SecantusDB) on free loopback ports in a temporary folder. With TEST_REDIS_URL /
TEST_MONGODB_URI set, it uses those servers instead: MongoDB in a fresh database dropped at
the end, Redis only through keys the tests create.
"""

import dataclasses
import os
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from functools import partial
from typing import Any, TypeVar

import httpx
import pytest
import pytest_asyncio
from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import AutoReconnect

from core.settings import Settings, load_settings
from flashsale.embedded import EmbeddedServers, start_embedded
from graphql_api.app import create_app
from models import DOCUMENT_MODELS, Role, User
from services import Services, build_services, rate_limits_from
from tests.processes import CHILDREN

ADMIN_EMAIL = "admin@test.example"
PASSWORD = "correct horse battery"
SERVER_LOG_LINES = 200
T = TypeVar("T")


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C as a terminal sends it. A shell without job control starts background jobs
    (`bash .ci/run &`, nohup) with SIGINT ignored, and the servers the tests start inherit
    that until their own handler is installed: a SIGINT sent at once was then ignored and
    the lifecycle test saw the server come up. Handlers reset at exec, so the default here
    gives the children the default disposition a user's terminal gives them."""
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """A failing test's report ends with the last lines each server it used printed: a
    storm that fails shows why the server answered as it did."""
    report = yield
    if report.failed:
        for child in [child for child in list(CHILDREN) if child.seen_since(call.start)]:
            tail = "\n".join(child.output().splitlines()[-SERVER_LOG_LINES:])
            report.sections.append((f"output of {child.command}", tail))
    return report


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    redis_url = os.environ.get("TEST_REDIS_URL")
    mongodb_uri = os.environ.get("TEST_MONGODB_URI")
    embedded: EmbeddedServers | None = None
    if not (redis_url and mongodb_uri):
        embedded = start_embedded(
            tmp_path_factory.mktemp("servers"), redis=not redis_url, mongo=not mongodb_uri
        )
        redis_url = redis_url or embedded.redis_url
        mongodb_uri = mongodb_uri or embedded.mongodb_uri
    assert redis_url
    assert mongodb_uri
    try:
        yield {"redis_url": redis_url, "mongodb_uri": mongodb_uri}
    finally:
        if embedded is not None:
            embedded.stop()


@pytest.fixture(scope="session")
def settings(servers: dict[str, str]) -> Settings:
    return load_settings(
        redis_url=servers["redis_url"],
        mongodb_uri=servers["mongodb_uri"],
        mongodb_db=f"flashsale_test_{uuid.uuid4().hex[:8]}",
        admin_email=ADMIN_EMAIL,
        admin_password=PASSWORD,
        # Most tests send far more than a user may; tests/ratelimit turns the limits on.
        rate_limits_enabled=False,
        _env_file=None,
    )


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def services(settings: Settings) -> AsyncIterator[Services]:
    built = await build_services(settings)
    try:
        yield built
    finally:
        await after_a_quiet_spell(lambda: built.mongo.drop_database(settings.mongodb_db))
        await built.close()


@pytest.fixture
def database(services: Services) -> AsyncDatabase[dict[str, Any]]:
    """The suite's MongoDB database, as the services have it."""
    return services.database


@pytest.fixture(autouse=True)
def clean_database(request: pytest.FixtureRequest) -> None:
    """Every test that uses the databases starts with empty collections. A plain fixture,
    so tests without them (the browser tests, whose Playwright holds the thread's event
    loop) never touch asyncio."""
    if "services" in request.fixturenames:
        request.getfixturevalue("empty_collections")


@pytest_asyncio.fixture(loop_scope="session")
async def empty_collections(services: Services) -> None:
    for model in DOCUMENT_MODELS:
        collection = model.collection(services.database)
        await after_a_quiet_spell(partial(collection.delete_many, {}))


async def after_a_quiet_spell(operation: Callable[[], Awaitable[T]]) -> T:
    """The suite's operation, retried once if it was cancelled by a quiet spell.

    The suite's client lives on the session's event loop, which does not run during a
    synchronous test: after one that drives subprocesses for over 20 s
    (tests/flashsale/test_lifecycle.py), PyMongo's monitor finds its heartbeat timed out,
    marks the server unknown and clears the pool, cancelling the first operation (seen in
    CI with a heartbeat listener; at the session's end, the cancelled drop was followed by
    unclosed-socket warnings and then CPython 3.11's "AST constructor recursion depth
    mismatch" in a later import, likely a finalizer run by the GC mid-compile). The
    monitor has checked again by the time it is retried."""
    try:
        return await operation()
    except AutoReconnect:
        return await operation()


@pytest_asyncio.fixture(loop_scope="session")
async def client(services: Services, settings: Settings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, services)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        yield http


class GraphQL:
    """A tiny GraphQL client over the real ASGI app."""

    def __init__(self, http: httpx.AsyncClient) -> None:
        self.http = http

    async def __call__(
        self, query: str, variables: dict[str, Any] | None = None, token: str | None = None
    ) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = await self.http.post(
            "/graphql", json={"query": query, "variables": variables or {}}, headers=headers
        )
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


@pytest.fixture
def gql(client: httpx.AsyncClient) -> GraphQL:
    return GraphQL(client)


async def signed_in(services: Services, role: Role = Role.CUSTOMER) -> tuple[ObjectId, str]:
    """A real user (tokens of users that do not exist are refused) and a token for it."""
    user = User(email=f"{uuid.uuid4().hex}@test.example", password_hash="-", role=role)
    await user.insert(services.database)
    return user.id, services.accounts.tokens.issue(user.id, role)


@pytest_asyncio.fixture(loop_scope="session")
async def admin_token(services: Services) -> str:
    return (await services.accounts.register(ADMIN_EMAIL, PASSWORD, Role.ADMIN)).token


@pytest_asyncio.fixture(loop_scope="session")
async def customer_token(services: Services) -> str:
    return (await services.accounts.register("shopper@test.example", PASSWORD)).token


def error_codes(body: dict[str, Any]) -> list[str]:
    return [e.get("extensions", {}).get("code") for e in body.get("errors") or []]


class FrozenTime:
    """Wall-clock time the tests move by hand, for the rate limits (their clock)."""

    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def time(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def frozen_time() -> FrozenTime:
    return FrozenTime()


def rate_limited(
    services: Services, frozen: FrozenTime, prefix: str | None = None, **settings: Any
) -> Services:
    """`services` with rate limits switched on (under a key prefix of their own, so no
    other test's counts leak in) and `settings` overriding the defaults."""
    configured = load_settings(
        **{**services.settings.model_dump(), "rate_limits_enabled": True, **settings},
        _env_file=None,
    )
    limits_ = rate_limits_from(
        services.redis,
        configured,
        prefix=prefix or f"fs:test:{uuid.uuid4().hex}",
        clock=frozen.time,
    )
    return dataclasses.replace(services, settings=configured, rate_limits=limits_)
