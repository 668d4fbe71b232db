"""Issue 12: kill -9 right after checkouts were answered, then a restart on the same data
folder. Every order the API acknowledged is still in MongoDB and the invariants hold once
the restarted server has recovered. The embedded default as `flashsale serve` runs it: real
processes, real signals, real files (SecantusDB fsyncs each commit: sync_on_commit)."""

import asyncio
import contextlib
import signal
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psutil
import pytest
from bson import ObjectId
from pymongo import AsyncMongoClient

from accounts.tokens import TokenService
from flashsale.embedded import running_endpoints
from models import Order, Reservation, Role, User
from reservations import ReservationEngine
from reservations.audit import AuditReport, audit
from services import redis_client
from tests.polling import eventually
from tests.processes import ServerProcess, base_env
from tests.reservations.storm import CHECKOUT, RESERVE, call

ADMIN_PASSWORD = "durability-admin-password"
DATABASE = "flashsale"
JWT_SECRET = "durability-test-secret-" + "x" * 16
SHOPPERS = 120
PRODUCTS = 3
KILL_TIMEOUT = 10.0
RECOVERY_TIMEOUT = 60.0
CREATE = """mutation C($name: String!, $stock: Int!) {
  createProduct(input: {name: $name, price: "10.00", totalStock: $stock, maxPerCustomer: 1}) {
  product { id } errors { code } } }"""


@contextlib.contextmanager
def serving(env: dict[str, str]) -> Iterator[ServerProcess]:
    """`flashsale serve`, stopped afterwards if the test has not killed it; its output
    shown if the test fails."""
    server = ServerProcess(env)
    try:
        yield server
    except BaseException:
        print(f"--- output of {server.process.args!r}:\n{server.output()[-20_000:]}")  # noqa: T201
        raise
    finally:
        server.stop()


@contextlib.asynccontextmanager
async def connected(data_dir: Path) -> AsyncIterator[ReservationEngine]:
    """An engine on the embedded servers of the `flashsale serve` holding `data_dir`, on
    clients of its own."""
    endpoints = running_endpoints(data_dir)
    assert endpoints is not None
    assert endpoints["mongodb_uri"] is not None
    assert endpoints["redis_url"] is not None
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        endpoints["mongodb_uri"], tz_aware=True
    )
    redis = redis_client(endpoints["redis_url"], cluster=False)
    try:
        yield ReservationEngine(redis, mongo[DATABASE], default_hold_seconds=600)
    finally:
        await redis.aclose(close_connection_pool=True)
        await mongo.close()


async def _prepare(server: ServerProcess, data_dir: Path) -> tuple[list[str], list[str]]:
    """Products created by the admin over the API, and signed-in customers (real users)."""
    login = server.gql(
        f'mutation {{ login(email: "admin@flashsale.example", password: "{ADMIN_PASSWORD}")'
        " { token } }"
    )
    admin = login["data"]["login"]["token"]
    async with httpx.AsyncClient(timeout=30) as http:
        products = [
            (
                await call(
                    http, server.url, CREATE, {"name": f"Durable {n}", "stock": SHOPPERS}, admin
                )
            )["createProduct"]["product"]["id"]
            for n in range(PRODUCTS)
        ]
    customers = [ObjectId() for _ in range(SHOPPERS)]
    users = [
        {
            "_id": customer,
            "email": f"{uuid.uuid4().hex}@durability.example",
            "password_hash": "-",
            "role": Role.CUSTOMER.value,
            "created_at": datetime.now(UTC),
        }
        for customer in customers
    ]
    async with connected(data_dir) as engine:
        await User.collection(engine.database).insert_many(users)
    tokens = TokenService(JWT_SECRET, 3600)
    return products, [tokens.issue(customer, Role.CUSTOMER) for customer in customers]


async def _shop(
    url: str, products: list[str], tokens: list[str], when_all_answered: Callable[[], None]
) -> list[str]:
    """Every customer reserves one unit and checks out, all at once; the order ids the API
    acknowledged (every checkout must be). `when_all_answered` runs the moment the last
    acknowledgement is in, before anything else (closing connections takes a while)."""
    acknowledged: list[str] = []

    async def shopper(http: httpx.AsyncClient, n: int, token: str) -> None:
        product = products[n % len(products)]
        reserved = await call(http, url, RESERVE, {"p": product, "q": 1}, token)
        reservation = reserved["reserve"]["reservation"]
        assert reservation, reserved
        done = await call(http, url, CHECKOUT, {"r": reservation["id"]}, token)
        assert done["checkout"]["order"], done
        acknowledged.append(done["checkout"]["order"]["id"])
        if len(acknowledged) == len(tokens):
            when_all_answered()

    async with (
        httpx.AsyncClient(limits=httpx.Limits(max_connections=SHOPPERS), timeout=60) as http,
        asyncio.TaskGroup() as shoppers,
    ):
        for n, token in enumerate(tokens):
            shoppers.create_task(shopper(http, n, token))
    return acknowledged


async def _killed(processes: list[psutil.Process]) -> None:
    """Wait (bounded) until each is dead: gone, or a zombie its parent has not reaped."""

    async def dead() -> bool:
        for process in processes:
            with contextlib.suppress(psutil.NoSuchProcess):
                if process.status() != psutil.STATUS_ZOMBIE:
                    return False
        return True

    await eventually(
        dead, within=KILL_TIMEOUT, every=0.05, failure=lambda: f"still alive: {processes}"
    )


@dataclass(frozen=True)
class Crash:
    name: str
    victims: tuple[str, ...]  # command-line fragments of the embedded servers killed
    api_too: bool  # the API process as well; else it and the rest stop as usual


MONGODB_SERVER = Crash("mongodb-server", ("flashsale.mongo_server",), api_too=False)
# Both embedded servers before the API: each would stop cleanly if it saw the API die first.
WHOLE_TREE = Crash("whole-tree", ("flashsale.mongo_server", "redis-server"), api_too=True)


@pytest.mark.parametrize("crash", [MONGODB_SERVER, WHOLE_TREE], ids=lambda crash: crash.name)
async def test_acknowledged_orders_survive_kill_9(tmp_path: Path, crash: Crash) -> None:
    data_dir = tmp_path / "data"
    env = base_env(
        DATA_DIR=str(data_dir),
        MONGODB_DB=DATABASE,
        ADMIN_PASSWORD=ADMIN_PASSWORD,
        JWT_SECRET=JWT_SECRET,
    )

    # Given a sale on the embedded default, in which every checkout was acknowledged
    with serving(env) as server:
        products, tokens = await _prepare(server, data_dir)
        victims = [process for name in crash.victims for process in server.named(name)]
        assert len(victims) == len(crash.victims)
        if crash.api_too:
            victims.append(psutil.Process(server.process.pid))

        # When kill -9 hits the moment the last answer is in
        def kill_now() -> None:
            for victim in victims:
                victim.send_signal(signal.SIGKILL)

        acknowledged = await _shop(server.url, products, tokens, kill_now)
        assert len(acknowledged) == SHOPPERS
        await _killed(victims)
        server.stop(signal.SIGKILL if crash.api_too else signal.SIGTERM)

    # Then, restarted on the same folder, MongoDB has every acknowledged order (and no other)
    with serving(env) as restarted:
        async with connected(data_dir) as engine:
            product_ids = [ObjectId(p) for p in products]
            orders = Order.collection(engine.database).find({"product_id": {"$in": product_ids}})
            recorded = {str(order["_id"]) async for order in orders}
            lost = set(acknowledged) - recorded
            assert not lost, (
                f"{len(lost)} of {len(acknowledged)} acknowledged orders lost: {sorted(lost)}"
            )
            assert recorded == set(acknowledged)
            completed = await Reservation.collection(engine.database).count_documents(
                {"product_id": {"$in": product_ids}, "status": "COMPLETED"}
            )
            assert completed == SHOPPERS

            # and once it has recovered, Redis and MongoDB agree on every invariant.
            report = AuditReport()

            async def audited() -> bool:
                nonlocal report
                report = await audit(engine, product_ids)
                return report.ok

            await eventually(
                audited,
                within=RECOVERY_TIMEOUT,
                every=0.5,
                failure=lambda: f"audit after recovery: {report.problems}",
            )
            counters = await engine.counters(product_ids)
            assert sum(c.sold for c in counters.values()) == SHOPPERS
            assert all(c.reserved == 0 for c in counters.values())
        assert restarted.process.poll() is None
