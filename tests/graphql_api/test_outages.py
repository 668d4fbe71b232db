"""Every call type against each outage, with real servers stopped and started again.

A server process of our own runs on a Redis and a MongoDB-protocol server of its own (so
stopping them disturbs no other test). With one store down, every operation answers at
once or with SERVICE_UNAVAILABLE, never an internal error; what needs only the other
store is still served; once the store is back, every operation works again."""

import asyncio
import contextlib
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from redis.asyncio import Redis

from accounts import liveness
from flashsale.embedded import find_redis_server, free_port
from reservations import ledger
from reservations.keys import PREFIX
from services import mongo_client
from tests.polling import eventually
from tests.processes import ServerProcess, base_env, running
from tests.ws import session

ADMIN_EMAIL, PASSWORD = "admin@outage.example", "outage admin password"
ANY_TIME = "2026-06-01T00:00:00Z", "2027-06-01T00:00:00Z"
# A client gives up on a call after this long: an answer later than this is a hang.
CALL_PATIENCE = 30.0
# What the README promises for an answer while a store is out of reach (issue 12's bound):
# at most 1 s for the user check, then MongoDB's 3 s server selection, or a checkout's 5 s
# transaction bound. The timeouts that make it are checked as configured
# (test_the_outage_bound_is_what_the_timeouts_add_up_to) and the user check's not waiting
# is counted (tests/accounts/test_liveness.py); wall time on a shared machine is not a
# measure, so the survey fails only an answer slower than twice the bound: a hang. Each
# request is timed alone (a call on a new hold makes two) and the times are in the report.
OUTAGE_BOUND_SECONDS = 6.0
HANG_SECONDS = 2 * OUTAGE_BOUND_SECONDS

PRODUCT_FIELDS = "id name availableStock reservedStock soldCount"
HOLD = "reservation { id status } errors { code }"


class Store:
    """A server on a fixed loopback port that can be stopped and started again on it."""

    def __init__(self, name: str, command: Callable[[int], list[str]], ready: str) -> None:
        self.name, self._command, self._ready = name, command, ready
        self.port = free_port()
        self.process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            self._command(self.port), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        assert self.process.stdout is not None
        seen: list[str] = []
        for line in self.process.stdout:  # ends when the process does
            seen.append(line)
            if self._ready in line:
                break
        else:
            raise AssertionError(f"{self.name} did not start:\n{''.join(seen)}")
        # Keep reading its output so a full pipe never blocks it.
        self._drain = threading.Thread(target=self.process.stdout.read, daemon=True)
        self._drain.start()

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()  # the outage comes without warning
            self.process.wait(timeout=30)
            self._drain.join(timeout=30)
            assert self.process.stdout is not None
            self.process.stdout.close()
            self.process = None

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        self.stop()
        try:
            yield
        finally:
            self.start()


@dataclass
class World:
    url: str
    admin: str
    customer: str
    product: str
    completed: str  # a hold that was checked out
    cancelled: str  # a hold that was cancelled


async def call(
    http: httpx.AsyncClient, url: str, query: str, token: str | None = None, **variables: Any
) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    response = await http.post(
        f"{url}/graphql", json={"query": query, "variables": variables}, headers=headers
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def outcome(body: dict[str, Any]) -> str:
    """OK, or the one code the call answered (a GraphQL error or a payload's error)."""
    codes = {e.get("extensions", {}).get("code") for e in body.get("errors") or []}

    def payload_codes(value: object) -> None:
        if isinstance(value, dict):
            for error in value.get("errors") or []:
                if isinstance(error, dict) and "code" in error:
                    codes.add(error["code"])
            for child in value.values():
                payload_codes(child)

    payload_codes(body.get("data"))
    assert len(codes) <= 1, body
    return codes.pop() if codes else "OK"


Call = Callable[[httpx.AsyncClient, World], Awaitable[dict[str, Any]]]
CHECKOUT = "mutation($r: ID!) { checkout(reservationId: $r) { order { id } errors { code } } }"
CANCEL = f"mutation($r: ID!) {{ cancelReservation(reservationId: $r) {{ {HOLD} }} }}"
RESERVE = f"mutation($p: ID!) {{ reserve(productId: $p, quantity: 1) {{ {HOLD} }} }}"


def request(query: str, token: str | None = None, **variables: Callable[[World], Any]) -> Call:
    """A call of `query` as the World's `token` user, its variables read from the World."""

    async def run(http: httpx.AsyncClient, w: World) -> dict[str, Any]:
        values = {name: value(w) for name, value in variables.items()}
        return await call(http, w.url, query, getattr(w, token) if token else None, **values)

    return run


def on_a_new_hold(query: str) -> Call:
    """Reserve, then `query` on that hold (when the reserve cannot, its answer counts)."""

    async def run(http: httpx.AsyncClient, w: World) -> dict[str, Any]:
        held = await call(http, w.url, RESERVE, w.customer, p=w.product)
        reservation = ((held.get("data") or {}).get("reserve") or {}).get("reservation")
        if not reservation:
            return held
        return await call(http, w.url, query, w.customer, r=reservation["id"])

    return run


CALLS: dict[str, Call] = {
    "products": request("{ products(first: 5) { edges { node { id available sold } } } }"),
    "product": request(
        "query($p: ID!) { product(id: $p) { id available sold } }", p=lambda w: w.product
    ),
    "register": request(
        'mutation($e: String!) { register(email: $e, password: "long enough pw")'
        " { token errors { code } } }",
        e=lambda w: f"{uuid.uuid4().hex}@outage.example",
    ),
    "login": request(
        f'mutation {{ login(email: "{ADMIN_EMAIL}", password: "{PASSWORD}")'
        " { token errors { code } } }"
    ),
    "me": request("{ me { id email } }", "customer"),
    "myReservations": request("{ myReservations { id status } }", "customer"),
    "myOrders": request("{ myOrders { id } }", "customer"),
    # A completed hold is read from MongoDB once the persister has recorded it and Redis
    # let it go (within a moment of the checkout, later under load), a live one from Redis.
    "reservation": request(
        "query($r: ID!) { reservation(id: $r) { id status } }", "customer", r=lambda w: w.completed
    ),
    "reservation of a live hold": on_a_new_hold(
        "query($r: ID!) { reservation(id: $r) { id status } }"
    ),
    "reserve": request(RESERVE, "customer", p=lambda w: w.product),
    "cancelReservation": on_a_new_hold(CANCEL),
    "checkout": on_a_new_hold(CHECKOUT),
    "checkout of a completed hold": request(CHECKOUT, "customer", r=lambda w: w.completed),
    "checkout of an ended hold": request(CHECKOUT, "customer", r=lambda w: w.cancelled),
    "cancel of an ended hold": request(CANCEL, "customer", r=lambda w: w.cancelled),
    "createProduct": request(
        'mutation($n: String!) { createProduct(input: {name: $n, price: "1.00",'
        " totalStock: 3}) { product { id } errors { code } } }",
        "admin",
        n=lambda w: f"outage {uuid.uuid4().hex[:8]}",
    ),
    "updateProduct": request(
        'mutation($p: ID!) { updateProduct(id: $p, input: {description: "changed"})'
        " { product { id } errors { code } } }",
        "admin",
        p=lambda w: w.product,
    ),
    "restock": request(
        "mutation($p: ID!) { restock(id: $p, quantity: 1) { product { id } errors { code } } }",
        "admin",
        p=lambda w: w.product,
    ),
    "salesStats": request(
        "query($f: DateTime!, $t: DateTime!) { salesStats(from: $f, to: $t)"
        " { totals { orders } } }",
        "admin",
        f=lambda w: ANY_TIME[0],
        t=lambda w: ANY_TIME[1],
    ),
}


async def survey(w: World) -> dict[str, tuple[str, float]]:
    """Every call at once: what each answered, and after how many seconds its slowest
    request was answered (a call on a new hold makes two)."""

    async def timed(run: Call) -> tuple[str, float]:
        sent: dict[int, float] = {}
        slowest = 0.0

        async def on_request(request: httpx.Request) -> None:
            sent[id(request)] = time.monotonic()

        async def on_response(response: httpx.Response) -> None:
            nonlocal slowest
            slowest = max(slowest, time.monotonic() - sent[id(response.request)])

        hooks: dict[str, list[Callable[..., Any]]] = {
            "request": [on_request],
            "response": [on_response],
        }
        async with httpx.AsyncClient(timeout=CALL_PATIENCE, event_hooks=hooks) as http:
            body = await run(http, w)
        return outcome(body), round(slowest, 1)

    answers = await asyncio.gather(*(timed(run) for run in CALLS.values()))
    return dict(zip(CALLS, answers, strict=True))


@dataclass
class Stores:
    redis: Store
    mongo: Store

    def env(self, database: str) -> dict[str, str]:
        return base_env(
            REDIS_URL=f"redis://127.0.0.1:{self.redis.port}/0",
            MONGODB_URI=f"mongodb://127.0.0.1:{self.mongo.port}/"
            "?directConnection=true&retryWrites=false",
            MONGODB_DB=database,
            ADMIN_EMAIL=ADMIN_EMAIL,
            ADMIN_PASSWORD=PASSWORD,
        )


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    folder: Path = tmp_path_factory.mktemp("outage-stores")
    redis = Store(
        "redis",
        lambda port: [
            find_redis_server(),
            *("--port", str(port), "--bind", "127.0.0.1", "--dir", str(folder)),
            *("--appendonly", "yes", "--appendfsync", "always", "--save", ""),
        ],
        "Ready to accept connections",
    )
    mongo = Store(
        "mongodb",
        lambda port: [
            sys.executable,
            *("-m", "flashsale.mongo_server", "--port", str(port)),
            *("--storage-path", str(folder / "mongo")),
        ],
        "listening on",
    )
    try:
        redis.start()
        mongo.start()
        yield Stores(redis, mongo)
    finally:
        redis.stop()
        mongo.stop()


async def world_on(url: str, shopper: str = "shopper@outage.example") -> World:
    """An admin, a customer (`shopper`, new to the server), a product, a completed and a
    cancelled hold."""
    async with httpx.AsyncClient(timeout=CALL_PATIENCE) as http:
        login = await call(
            http,
            url,
            "mutation($e: String!, $p: String!) { login(email: $e, password: $p) { token } }",
            e=ADMIN_EMAIL,
            p=PASSWORD,
        )
        admin = login["data"]["login"]["token"]
        joined = await call(
            http,
            url,
            'mutation($e: String!) { register(email: $e, password: "long enough pw") { token } }',
            e=shopper,
        )
        customer = joined["data"]["register"]["token"]
        created = await call(
            http,
            url,
            'mutation { createProduct(input: {name: "Outage", price: "2.00", totalStock: 1000,'
            " maxPerCustomer: 1000}) { product { id } } }",
            admin,
        )
        product = created["data"]["createProduct"]["product"]["id"]

        async def hold() -> str:
            body = await call(http, url, RESERVE, customer, p=product)
            rid: str = body["data"]["reserve"]["reservation"]["id"]
            return rid

        completed, cancelled = await hold(), await hold()
        assert outcome(await call(http, url, CHECKOUT, customer, r=completed)) == "OK"
        assert outcome(await call(http, url, CANCEL, customer, r=cancelled)) == "OK"
    return World(url, admin, customer, product, completed, cancelled)


@pytest.fixture(scope="module")
def server(stores: Stores) -> Iterator[tuple[ServerProcess, dict[str, str]]]:
    env = stores.env(f"outage_{uuid.uuid4().hex[:8]}")
    seeded = subprocess.run(
        [sys.executable, "-m", "flashsale", "seed"], env=env, capture_output=True, text=True
    )
    assert seeded.returncode == 0, seeded.stdout + seeded.stderr
    with running(env) as (process,):
        yield process, env


UP = dict.fromkeys(CALLS, "OK") | {
    "checkout of an ended hold": "RESERVATION_NOT_ACTIVE",
    "cancel of an ended hold": "RESERVATION_NOT_ACTIVE",
}
# What needs only the store that is still up, and so must still be served.
SERVED_WITHOUT_MONGODB = {"reserve", "cancelReservation", "reservation of a live hold"}
SERVED_WITHOUT_REDIS = {
    *("products", "product", "register", "login", "me", "myReservations", "myOrders"),
    *("reservation", "createProduct", "updateProduct", "restock", "salesStats"),
    "checkout of a completed hold",
}


def answers(survey: dict[str, tuple[str, float]]) -> dict[str, str]:
    return {name: code for name, (code, _) in survey.items()}


async def test_the_outage_bound_is_what_the_timeouts_add_up_to() -> None:
    """The README's bound for an answer while a store is out of reach, from the timeouts
    as configured: the user check gives up after LOOKUP_SECONDS, then a request's own
    MongoDB work waits at most the server selection, a checkout at most its transaction's
    bound (which includes the selection)."""
    client = mongo_client("mongodb://127.0.0.1:1/?directConnection=true")
    try:
        selection = client.options.server_selection_timeout
    finally:
        await client.close()
    assert selection <= ledger.CHECKOUT_TIMEOUT_SECONDS
    worst = liveness.LOOKUP_SECONDS + max(selection, ledger.CHECKOUT_TIMEOUT_SECONDS)
    assert worst <= OUTAGE_BOUND_SECONDS


def check_outage(survey: dict[str, tuple[str, float]], served: set[str]) -> None:
    """Each call answered as with both stores up, or SERVICE_UNAVAILABLE, each request
    well within HANG_SECONDS; `served` as up."""
    got = answers(survey)
    wrong = {n: c for n, c in got.items() if c not in (UP[n], "SERVICE_UNAVAILABLE")}
    assert not wrong, survey
    refused = {n for n in served if got[n] != UP[n]}
    assert not refused, survey
    slow = {n: seconds for n, (_, seconds) in survey.items() if seconds > HANG_SECONDS}
    assert not slow, survey


async def back_to_normal(w: World) -> None:
    """Once the store is back, every call answers as before (the clients reconnect)."""
    last: dict[str, tuple[str, float]] = {}

    async def normal() -> bool:
        last.update(await survey(w))
        return answers(last) == UP

    await eventually(normal, within=30, every=0.5, failure=lambda: f"not back: {last}")


def reconcile(env: dict[str, str], *options: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flashsale", "reconcile", *options],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def total_stock(w: World) -> int:
    async with httpx.AsyncClient(timeout=CALL_PATIENCE) as http:
        body = await call(
            http, w.url, "query($p: ID!) { product(id: $p) { totalStock } }", p=w.product
        )
    total: int = body["data"]["product"]["totalStock"]
    return total


def test_every_call_answers_through_each_outage(
    stores: Stores, server: tuple[ServerProcess, dict[str, str]]
) -> None:
    process, env = server

    async def go() -> None:
        w = await world_on(process.url)
        assert answers(await survey(w)) == UP

        with stores.mongo.down():
            check_outage(await survey(w), SERVED_WITHOUT_MONGODB)
        await back_to_normal(w)

        before = await total_stock(w)
        with stores.redis.down():
            # restock +1 is answered done: MongoDB, the system of record, took it.
            check_outage(await survey(w), SERVED_WITHOUT_REDIS)
        # Redis missed that restock; reconciliation (the service runs it every
        # RECONCILE_SECONDS, an operator may run it at once) copies it over.
        found = reconcile(env, "--dry-run")
        assert found.returncode == 1, found.stdout + found.stderr
        assert f"product {w.product}: total and rules of version" in found.stdout, found.stdout
        assert reconcile(env).returncode == 0
        assert await total_stock(w) == before + 1
        await back_to_normal(w)
        # Nothing left to repair. Each survey creates a product, and one created just as
        # Redis came back may reach Redis only with the next products refresh (every 2 s):
        # the check waits for that, bounded.
        settled = reconcile(env, "--dry-run")

        async def reconciled() -> bool:
            nonlocal settled
            settled = reconcile(env, "--dry-run")
            return settled.returncode == 0

        await eventually(
            reconciled, within=30, every=1, failure=lambda: settled.stdout + settled.stderr
        )

    asyncio.run(go())


STOCK_CHANGED = "subscription($p: [ID!]!) { stockChanged(productIds: $p) { productId } }"
PRODUCT_CREATED = "subscription { productCreated { id } }"
HOLD_EVENTS = "subscription { myReservationEvents { reservationId status } }"


async def first_message(url: str, token: str, query: str, **variables: Any) -> dict[str, Any]:
    """The first message a new subscription gets, within HANG_SECONDS."""
    async with session(url, token) as subscriber:
        await subscriber.subscribe(query, variables)
        async with asyncio.timeout(HANG_SECONDS):
            return await subscriber.receive()


def unavailable(message: dict[str, Any]) -> bool:
    errors = message["payload"].get("errors") or []
    return [e["extensions"]["code"] for e in errors] == ["SERVICE_UNAVAILABLE"]


def test_subscriptions_answer_through_each_outage(
    stores: Stores, server: tuple[ServerProcess, dict[str, str]]
) -> None:
    """Subscriptions are Redis's (its pub/sub and live counters): with Redis down each is
    refused SERVICE_UNAVAILABLE at once, and once it is back they work again; with MongoDB
    down the stock feed starts and a shopper's hold events arrive as before."""
    process, _ = server

    async def listening(channel: str) -> bool:
        async with Redis(port=stores.redis.port) as redis:
            ((_, count),) = await redis.pubsub_numsub(channel)
            return int(count) > 0

    async def hold_events_arrive(w: World, channel: str) -> None:
        async with session(w.url, w.customer) as subscriber:
            await subscriber.subscribe(HOLD_EVENTS)
            await eventually(  # events published before the server subscribed are lost
                lambda: listening(channel), within=10, every=0.05, failure=lambda: "unheard"
            )
            async with httpx.AsyncClient(timeout=CALL_PATIENCE) as http:
                held = await call(http, w.url, RESERVE, w.customer, p=w.product)
            assert (reservation := held["data"]["reserve"]["reservation"]), held
            async with asyncio.timeout(HANG_SECONDS):
                event = await subscriber.next_data()
            assert event["myReservationEvents"] == {
                "reservationId": reservation["id"],
                "status": "ACTIVE",
            }

    async def go() -> None:
        w = await world_on(process.url, "subscriber@outage.example")
        async with httpx.AsyncClient(timeout=CALL_PATIENCE) as http:
            me = await call(http, w.url, "{ me { id } }", w.customer)
        channel = f"{PREFIX}:customer:{me['data']['me']['id']}:events"
        with stores.redis.down():
            for query in (STOCK_CHANGED, PRODUCT_CREATED, HOLD_EVENTS):
                message = await first_message(w.url, w.customer, query, p=[w.product])
                assert unavailable(message), message
        await back_to_normal(w)
        # The channels refused during the outage are subscribed again (they stayed counted
        # as wanted, and this process never subscribed them again).
        await hold_events_arrive(w, channel)
        message = await first_message(w.url, w.customer, STOCK_CHANGED, p=[w.product])
        assert message["payload"]["data"]["stockChanged"]["productId"] == w.product, message

        with stores.mongo.down():
            message = await first_message(w.url, w.customer, STOCK_CHANGED, p=[w.product])
            assert message["payload"]["data"]["stockChanged"]["productId"] == w.product, message
            await eventually(  # the previous subscriber has left
                lambda: _not(listening(channel)), within=10, every=0.05, failure=lambda: "held"
            )
            await hold_events_arrive(w, channel)
        await back_to_normal(w)

    asyncio.run(go())


async def _not(check: Awaitable[bool]) -> bool:
    return not await check
