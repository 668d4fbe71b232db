"""`flashsale bench`: a reserve stampede and a stock-read storm against a real server
process, compared with a trivial query on the same server, then the invariant audit.

Starts from an empty sale: its own database (and embedded servers unless MONGODB_URI /
REDIS_URL are set), one product, distinct customers. Load comes from this process over
loopback, so on a small machine the load generator shares the CPU with the server. The
generator is aiohttp (a dev dependency): httpx tops out near 350 requests/s on one core,
which would measure the client rather than the server.
"""

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import httpx

from catalog.validation import ProductDraft
from flashsale.bench_live import live_phase
from flashsale.container import Services, build_services
from flashsale.embedded import free_port, start_embedded
from flashsale.settings import Settings
from models import Role, User
from reservations.audit import audit

TRIVIAL = "{ __typename }"
RESERVE = """mutation R($p: ID!) { reserve(productId: $p, quantity: 1) {
  reservation { id } errors { code } } }"""
READ = "query P($p: ID!) { product(id: $p) { available reserved sold } }"
CHECKOUT = """mutation C($r: ID!) { checkout(reservationId: $r) {
  order { id } errors { code } } }"""


@dataclass
class Phase:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    outcomes: Counter[str]

    @property
    def throughput(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, p: float) -> float:
        ordered = sorted(self.latencies_ms)
        if not ordered:  # a phase with nothing to do (no hold to check out)
            return float("nan")
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    def describe(self) -> str:
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.outcomes.items()))
        return (
            f"{self.name:<16} {self.requests:>6} req in {self.seconds:6.2f}s = "
            f"{self.throughput:7.0f} req/s | p50 {self.percentile(50):6.1f} ms, "
            f"p95 {self.percentile(95):6.1f} ms, p99 {self.percentile(99):6.1f} ms | {outcomes}"
        )


async def _phase(
    name: str,
    requests: int,
    concurrency: int,
    call: Callable[[int], Awaitable[str]],
) -> Phase:
    latencies: list[float] = []
    outcomes: Counter[str] = Counter()
    queue = iter(range(requests))

    async def client() -> None:
        for n in queue:
            started = time.perf_counter()
            outcome = await call(n)
            latencies.append((time.perf_counter() - started) * 1000)
            outcomes[outcome] += 1

    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    return Phase(name, requests, time.perf_counter() - started, latencies, outcomes)


async def customers(services: Services, count: int) -> list[str]:
    """Tokens of `count` new customers: real users, since a token whose user does not exist
    is refused."""
    users = [
        User(email=f"{uuid.uuid4().hex}@bench.example", password_hash="-", role=Role.CUSTOMER)
        for _ in range(count)
    ]
    inserted = await User.insert_many(users)
    return [services.accounts.tokens.issue(i, Role.CUSTOMER) for i in inserted.inserted_ids]


def _wait_ready(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("the server exited during start-up")
        try:
            if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError("the server did not become ready")


async def _run(
    settings: Settings,
    url: str,
    requests: int,
    concurrency: int,
    stock: int,
    subscribers: int,
    *,
    drop_database: bool,
) -> list[str]:
    services = await build_services(settings)
    try:
        product = await services.catalog.create(
            ProductDraft.parse(
                name="Bench drop", price=Decimal("9.99"), total_stock=stock, max_per_customer=1
            )
        )
        assert product.id is not None
        product_id = str(product.id)
        tokens = await customers(services, requests)
        connector = aiohttp.TCPConnector(limit=concurrency)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as http:

            async def post(query: str, variables: dict[str, Any], token: str | None = None) -> Any:
                headers = {"Authorization": f"Bearer {token}"} if token else {}
                async with http.post(
                    "/graphql", json={"query": query, "variables": variables}, headers=headers
                ) as response:
                    return response.status, await response.json()

            async def trivial(n: int) -> str:
                status, body = await post(TRIVIAL, {})
                return "ok" if status == 200 and "errors" not in body else "error"

            held: list[tuple[str, str]] = []  # (token, reservation id)

            async def reserve(n: int) -> str:
                status, body = await post(RESERVE, {"p": product_id}, tokens[n])
                if status != 200 or "errors" in body:
                    return "error"
                payload = body["data"]["reserve"]
                if not payload["reservation"]:
                    return str(payload["errors"][0]["code"])
                held.append((tokens[n], payload["reservation"]["id"]))
                return "reserved"

            async def checkout(n: int) -> str:
                token, reservation_id = held[n]
                status, body = await post(CHECKOUT, {"r": reservation_id}, token)
                if status != 200 or "errors" in body:
                    return "error"
                payload = body["data"]["checkout"]
                return "ok" if payload["order"] else str(payload["errors"][0]["code"])

            async def read(n: int) -> str:
                status, body = await post(READ, {"p": product_id})
                return "ok" if status == 200 and "errors" not in body else "error"

            await _phase("warm-up", 500, concurrency, trivial)
            phases = [
                await _phase("trivial query", requests, concurrency, trivial),
                await _phase("reserve", requests, concurrency, reserve),
                await _phase("stock read", requests, concurrency, read),
            ]
            reserved_at = time.perf_counter()
            recorded = 0
            while time.perf_counter() - reserved_at < 60:
                recorded = await services.mongo[settings.mongodb_db][
                    "reservations"
                ].count_documents({"product_id": product.id})
                if recorded >= phases[1].outcomes["reserved"]:
                    break
                await asyncio.sleep(0.05)
            drained_ms = (time.perf_counter() - reserved_at) * 1000
            # Every hold bought by its owner: the order, sold and the rollups in one
            # transaction each.
            phases.append(await _phase("checkout", len(held), concurrency, checkout))
        report = await audit(services.engine, [product.id])
        counters = (await services.engine.counters([product.id]))[product.id]
        ratio = phases[1].throughput / phases[0].throughput
        lines = [phase.describe() for phase in phases]
        lines += [
            f"reserve / trivial throughput: {ratio:.2f}",
            f"stock {stock}: sold {counters.sold}, reserved {counters.reserved}, "
            f"available {counters.available}; oversold: "
            f"{max(0, counters.sold + counters.reserved - counters.total)}",
            f"persister: {recorded} holds in MongoDB {drained_ms:.0f} ms after the last request",
            "invariants: " + ("OK" if report.ok else "; ".join(report.problems)),
        ]
        if subscribers:
            lines += await live_phase(services, url, subscribers, await customers(services, 50))
        if drop_database:  # a server we were given; an embedded one goes with its folder
            await services.mongo.drop_database(settings.mongodb_db)
        return lines
    finally:
        await services.close()


def run_bench(
    settings: Settings,
    *,
    requests: int,
    concurrency: int,
    stock: int,
    workers: int,
    rate_limits: bool = False,
    subscribers: int = 0,
) -> int:
    data_dir = Path(tempfile.mkdtemp(prefix="flashsale-bench-"))
    embedded = None
    if not (settings.mongodb_uri and settings.redis_url):
        embedded = start_embedded(
            data_dir, redis=not settings.redis_url, mongo=not settings.mongodb_uri
        )
    live = settings.model_copy(
        update={
            "mongodb_uri": settings.mongodb_uri or (embedded and embedded.mongodb_uri),
            "redis_url": settings.redis_url or (embedded and embedded.redis_url),
            "mongodb_db": f"flashsale_bench_{uuid.uuid4().hex[:8]}",
        }
    )
    port = free_port()
    env = {
        **os.environ,
        "MONGODB_URI": str(live.mongodb_uri),
        "REDIS_URL": str(live.redis_url),
        "MONGODB_DB": live.mongodb_db,
        "JWT_SECRET": live.jwt_secret,
        "LOG_LEVEL": "WARNING",
        # One address sends everything here: with limits on, the quotas are set so high
        # that nothing is refused, and only the cost of counting shows.
        "RATE_LIMITS_ENABLED": str(rate_limits).lower(),
        "RATE_LIMIT_PER_IP": "100000000/minute",
        "RATE_LIMIT_RESERVE_PER_USER": "1000/minute",
        "QUERY_COST_BUDGET": "10000000",
        "QUERY_COST_RESTORE_RATE": "1000000",
    }
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "flashsale",
            "serve",
            "--port",
            str(port),
            "--workers",
            str(workers),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        try:
            _wait_ready(url, server)
        except RuntimeError as exc:  # the server's own stderr has said why
            print(f"flashsale bench: {exc}", file=sys.stderr)  # noqa: T201
            return 1
        print(  # noqa: T201
            f"flashsale bench: {requests} requests per phase, {concurrency} concurrent clients, "
            f"stock {stock}, {workers} API process(es), rate limits "
            f"{'on' if rate_limits else 'off'}, {os.cpu_count()} CPUs, load generator "
            "in this process",
            flush=True,
        )
        lines = asyncio.run(
            _run(
                live,
                url,
                requests,
                concurrency,
                stock,
                subscribers,
                # SecantusDB takes minutes to drop a database after a thousand transactions.
                drop_database=settings.mongodb_uri is not None,
            )
        )
        print("\n".join(lines))  # noqa: T201
        return 0 if lines[-1].endswith("OK") else 1
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
