"""A checkout burst on one product (issue 12): 200 shoppers check out their own holds at
once, over HTTP through the app, on the suite's MongoDB-protocol server (an fsync per
commit on the embedded default). Every one gets its order, none SERVICE_UNAVAILABLE, the
audit passes, and the orders share a few transactions rather than one each.

The second case puts a slow link in front of MongoDB (each message from the client held
10 ms: a busier machine than this one, or a database across a network). With a
transaction per checkout, one product's checkouts took 200 x 8 round trips, so the last of
them had waited past the checkout queue's bound; no time is asserted here, only answers."""

import asyncio
import dataclasses
from collections import Counter
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient, monitoring, uri_parser

from graphql_api.app import create_app
from models import Order, Product, Reservation, ReservationStatus
from models.stored import Database
from reservations import ReservationEngine
from reservations.audit import audit
from reservations.persister import ChangeLogPersister
from services import Services
from tests.conftest import signed_in
from tests.reservations.conftest import make_product
from tests.reservations.storm import CHECKOUT, RESERVE, call

SHOPPERS = 200
LINK_DELAY_SECONDS = 0.010


class SlowLink:
    """A TCP relay to one MongoDB server that holds every chunk the client sends for
    `delay` seconds before passing it on; replies pass at once."""

    def __init__(self, host: str, port: int, delay: float) -> None:
        self.host, self.port, self.delay = host, port, delay
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task[None]] = set()
        self._writers: list[asyncio.StreamWriter] = []

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return int(self._server.sockets[0].getsockname()[1])

    async def _relay(
        self, client_in: asyncio.StreamReader, client_out: asyncio.StreamWriter
    ) -> None:
        server_in, server_out = await asyncio.open_connection(self.host, self.port)
        self._writers += [client_out, server_out]
        for pipe in (
            self._pump(client_in, server_out, self.delay),
            self._pump(server_in, client_out, 0.0),
        ):
            task = asyncio.create_task(pipe)
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)

    @staticmethod
    async def _pump(source: asyncio.StreamReader, sink: asyncio.StreamWriter, delay: float) -> None:
        try:
            while chunk := await source.read(1 << 16):
                if delay:
                    await asyncio.sleep(delay)  # the slow link itself, not a wait for a state
                sink.write(chunk)
                await sink.drain()
        except ConnectionError:
            pass
        finally:
            sink.close()

    async def stop(self) -> None:
        assert self._server is not None
        self._server.close()
        for writer in self._writers:
            writer.close()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        for writer in self._writers:
            try:
                await writer.wait_closed()
            except ConnectionError:
                pass
        await self._server.wait_closed()


class Commits(monitoring.CommandListener):
    """Counts the transactions a client commits."""

    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "commitTransaction":
            self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


def through(uri: str, port: int) -> str:
    """`uri` with its one host replaced by the relay on `port`, connected to directly."""
    nodes = uri_parser.parse_uri(uri)["nodelist"]
    if len(nodes) != 1 or uri.startswith("mongodb+srv://"):
        pytest.skip("the slow link goes in front of a single MongoDB host")
    host, original = nodes[0]
    relayed = uri.replace(f"{host}:{original}", f"127.0.0.1:{port}", 1)
    if "directConnection" not in relayed:
        relayed += ("&" if "?" in relayed else "/?") + "directConnection=true"
    return relayed


@pytest_asyncio.fixture(
    loop_scope="session", params=[0.0, LINK_DELAY_SECONDS], ids=["direct", "slow-link"]
)
async def shop(
    request: pytest.FixtureRequest, services: Services, servers: dict[str, str]
) -> AsyncIterator[tuple[Services, Commits]]:
    """The suite's services with an engine of its own, its MongoDB client (through the slow
    link, in the second case) counting the transactions it commits."""
    uri = servers["mongodb_uri"]
    link = None
    if request.param:
        host, port = uri_parser.parse_uri(uri)["nodelist"][0]
        link = SlowLink(host, port, request.param)
        uri = through(uri, await link.start())
    commits = Commits()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        uri, tz_aware=True, event_listeners=[commits]
    )
    engine = ReservationEngine(
        services.redis,
        mongo[services.settings.mongodb_db],
        default_hold_seconds=services.settings.reservation_ttl_seconds,
    )
    try:
        yield dataclasses.replace(services, engine=engine), commits
    finally:
        await mongo.close()
        if link is not None:
            await link.stop()


async def test_two_hundred_checkouts_of_one_product_at_once_all_succeed(
    shop: tuple[Services, Commits], persister: ChangeLogPersister, database: Database
) -> None:
    services, commits = shop
    product = await make_product(database, total_stock=SHOPPERS, max_per_customer=1)
    tokens = [(await signed_in(services))[1] for _ in range(SHOPPERS)]
    app = create_app(services.settings, services)
    limits = httpx.Limits(max_connections=SHOPPERS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="http://test", limits=limits, timeout=120
    ) as http:
        held = [
            (await call(http, "", RESERVE, {"p": str(product), "q": 1}, token))["reserve"]
            for token in tokens
        ]
        assert all(payload["reservation"] for payload in held), held
        before = commits.count

        # All at once: each shopper checks out its own hold.
        answers = await asyncio.gather(
            *(
                call(http, "", CHECKOUT, {"r": payload["reservation"]["id"]}, token)
                for payload, token in zip(held, tokens, strict=True)
            )
        )

    outcomes = Counter(
        (answer["checkout"]["errors"] or [{"code": "OK"}])[0]["code"] for answer in answers
    )
    assert outcomes == {"OK": SHOPPERS}, outcomes
    assert len({answer["checkout"]["order"]["id"] for answer in answers}) == SHOPPERS
    # A few order transactions carried them all (an fsync each on the embedded default).
    assert commits.count - before <= SHOPPERS // 10, commits.count - before

    await persister.run_once([product])
    report = await audit(services.engine, [product])
    assert report.ok, report.problems
    counters = (await services.engine.counters([product]))[product]
    stored = await Product.get(database, product)
    assert stored is not None
    assert (counters.sold, counters.reserved, stored.sold) == (SHOPPERS, 0, SHOPPERS)
    assert await Order.count(database) == SHOPPERS
    completed = {"status": ReservationStatus.COMPLETED}
    assert await Reservation.count(database, completed) == SHOPPERS
