"""`flashsale bench`, one configuration: a reserve stampede and a stock-read storm against a
real server process, compared with a trivial query on the same server, a checkout of every
hold, then the invariant audit. `flashsale.bench_matrix` runs several configurations and
puts them side by side.

Starts from an empty sale: its own embedded servers (unless MONGODB_URI / REDIS_URL are
set) and database, one product, a fixed set of customers. Load comes from this process over
loopback, so on a small machine the load generator shares the CPU with the server; every
phase reports the CPU time of both. The generator is aiohttp (a dev dependency): httpx tops
out near 350 requests/s on one core, which would measure the client rather than the server.
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
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import httpx
import psutil

from catalog.validation import PER_CUSTOMER_MAX, ProductDraft
from core.settings import Settings
from flashsale.bench_live import live_phase
from flashsale.bench_room import room_comparison
from flashsale.embedded import free_port, start_embedded
from models import Reservation, Role, User
from reservations import audit
from services import Services, build_services

TRIVIAL = "{ __typename }"
RESERVE = """mutation R($p: ID!, $k: String!) {
  reserve(productId: $p, quantity: 1, idempotencyKey: $k) {
    reservation { id } errors { code } } }"""
READ = "query P($p: ID!) { product(id: $p) { available } }"
CHECKOUT = """mutation C($r: ID!) { checkout(reservationId: $r) {
  order { id } errors { code } } }"""
WARM_UP_REQUESTS = 500
ROOM_SHOPPERS_PER_UNIT = 10  # --waiting-room N: N shoppers for N/10 units


@dataclass(frozen=True)
class Config:
    """One server set-up: rate limits counted (quotas too high to refuse) or off, and the
    number of API processes."""

    rate_limits: bool
    workers: int

    @property
    def name(self) -> str:
        return f"{'on' if self.rate_limits else 'off'}-{self.workers}"


@dataclass(frozen=True)
class Load:
    requests: int  # per phase
    concurrency: int  # trivial, reserve and checkout
    read_concurrency: int
    stock: int
    customers: int
    subscribers: int = 0
    room_shoppers: int = 0


@dataclass
class Phase:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float]
    outcomes: Counter[str]
    # CPU seconds during the phase: this process (the load generator), the `flashsale
    # serve` tree, and the stores (this process's other children: Redis, SecantusDB).
    generator_cpu: float = 0.0
    server_cpu: float = 0.0
    stores_cpu: float = 0.0

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
            f"{self.name:<14} {self.requests:>6} req in {self.seconds:6.2f}s = "
            f"{self.throughput:7.0f} req/s | p50 {self.percentile(50):6.1f} ms, "
            f"p95 {self.percentile(95):6.1f} ms, p99 {self.percentile(99):6.1f} ms | CPU s: "
            f"generator {self.generator_cpu:.1f}, server {self.server_cpu:.1f}, "
            f"stores {self.stores_cpu:.1f} | {outcomes}"
        )


@dataclass
class Result:
    config: Config
    phases: dict[str, Phase] = field(default_factory=dict)
    lines: list[str] = field(default_factory=list)
    ok: bool = False


class CpuMeter:
    """CPU seconds (user + system) of this process, of the server's process tree and of
    this process's other children, read from /proc by psutil."""

    def __init__(self, server_pid: int) -> None:
        self._server = psutil.Process(server_pid)
        self._me = psutil.Process()

    @staticmethod
    def _times(processes: list[psutil.Process]) -> dict[int, float]:
        times = {}
        for process in processes:
            try:
                cpu = process.cpu_times()
            except psutil.NoSuchProcess:
                continue
            times[process.pid] = cpu.user + cpu.system
        return times

    def sample(self) -> tuple[float, dict[int, float], dict[int, float]]:
        server = [self._server, *self._server.children(recursive=True)]
        server_pids = {p.pid for p in server}
        others = [p for p in self._me.children(recursive=True) if p.pid not in server_pids]
        return time.process_time(), self._times(server), self._times(others)


def _cpu_delta(before: dict[int, float], after: dict[int, float]) -> float:
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


async def _phase(
    name: str,
    requests: int,
    concurrency: int,
    call: Callable[[int], Awaitable[str]],
    meter: CpuMeter,
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

    cpu_before, server_before, stores_before = meter.sample()
    started = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(concurrency)))
    seconds = time.perf_counter() - started
    cpu_after, server_after, stores_after = meter.sample()
    return Phase(
        name,
        requests,
        seconds,
        latencies,
        outcomes,
        generator_cpu=cpu_after - cpu_before,
        server_cpu=_cpu_delta(server_before, server_after),
        stores_cpu=_cpu_delta(stores_before, stores_after),
    )


async def customers(services: Services, count: int) -> list[str]:
    """Tokens of `count` new customers: real users, since a token whose user does not exist
    is refused."""
    users = [
        User(email=f"{uuid.uuid4().hex}@bench.example", password_hash="-", role=Role.CUSTOMER)
        for _ in range(count)
    ]
    inserted = await User.collection(services.database).insert_many(
        [user.to_mongo() for user in users]
    )
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
    settings: Settings, url: str, load: Load, meter: CpuMeter, result: Result, *, drop: bool
) -> None:
    services = await build_services(settings)
    try:
        # Customers cycle through the storm, so the per-customer limit is raised until it
        # never refuses: every refusal is then OUT_OF_STOCK and exactly the stock sells.
        per_customer = max(1, min(PER_CUSTOMER_MAX, load.stock))
        product = await services.catalog.create(
            ProductDraft.parse(
                name="Bench drop",
                price=Decimal("9.99"),
                total_stock=load.stock,
                max_per_customer=per_customer,
            )
        )
        product_id = str(product.id)
        tokens = await customers(services, load.customers)
        keys = [uuid.uuid4().hex for _ in range(load.requests)]  # one per reserve call
        connector = aiohttp.TCPConnector(limit=max(load.concurrency, load.read_concurrency))
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
                token = tokens[n % len(tokens)]
                status, body = await post(RESERVE, {"p": product_id, "k": keys[n]}, token)
                if status != 200 or "errors" in body:
                    return "error"
                payload = body["data"]["reserve"]
                if not payload["reservation"]:
                    return str(payload["errors"][0]["code"])
                held.append((token, payload["reservation"]["id"]))
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

            await _phase("warm-up", WARM_UP_REQUESTS, load.concurrency, trivial, meter)
            for name, requests, concurrency, call in (
                ("trivial query", load.requests, load.concurrency, trivial),
                ("reserve", load.requests, load.concurrency, reserve),
                ("stock read", load.requests, load.read_concurrency, read),
            ):
                phase = await _phase(name, requests, concurrency, call, meter)
                result.phases[name] = phase
            reserved = result.phases["reserve"].outcomes["reserved"]
            reserved_at = time.perf_counter()
            recorded = 0
            while time.perf_counter() - reserved_at < 60:
                recorded = await Reservation.collection(services.database).count_documents(
                    {"product_id": product.id}
                )
                if recorded >= reserved:
                    break
                await asyncio.sleep(0.05)
            drained_ms = (time.perf_counter() - reserved_at) * 1000
            # Every hold bought by its owner: the order, sold and the rollups in one
            # transaction each.
            result.phases["checkout"] = await _phase(
                "checkout", len(held), load.concurrency, checkout, meter
            )
        report = await audit(services.engine, [product.id])
        counters = (await services.engine.counters([product.id]))[product.id]
        expected = min(load.stock, load.requests, load.customers * per_customer)
        oversold = max(0, counters.sold + counters.reserved - counters.total)
        # A checkout that failed puts its hold back or leaves it claimed: still held.
        sale_ok = reserved == expected and counters.sold + counters.reserved == expected
        result.ok = report.ok and sale_ok and oversold == 0
        result.lines += [phase.describe() for phase in result.phases.values()]
        result.lines += [
            f"stock {load.stock}: {reserved} reserved (expected {expected}), then sold "
            f"{counters.sold}, held {counters.reserved}, available {counters.available}; "
            f"oversold: {oversold}" + ("" if sale_ok else " -- NOT the stock"),
            f"persister: {recorded} holds in MongoDB {drained_ms:.0f} ms after the last request",
            "invariants: " + ("OK" if report.ok else "; ".join(report.problems)),
        ]
        if load.subscribers:
            result.lines += await live_phase(
                services, url, load.subscribers, await customers(services, 50)
            )
        if load.room_shoppers:
            shoppers = await customers(services, load.room_shoppers)
            units = max(1, load.room_shoppers // ROOM_SHOPPERS_PER_UNIT)
            result.lines += await room_comparison(services, url, shoppers, units)
        if drop:  # a server we were given; an embedded one goes with its folder
            await services.mongo.drop_database(services.database.name)
    finally:
        await services.close()


def run_config(settings: Settings, config: Config, load: Load) -> Result:
    """One configuration on freshly started servers: embedded stores (unless given), a new
    database and a `flashsale serve` child, all stopped before returning. Raises
    RuntimeError if the server does not start."""
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
        # One address sends everything and the customers reserve many times each: with
        # limits on, the quotas are set so high that nothing is refused, and only the cost
        # of counting shows.
        "RATE_LIMITS_ENABLED": str(config.rate_limits).lower(),
        "RATE_LIMIT_PER_IP": "100000000/minute",
        "RATE_LIMIT_RESERVE_PER_USER": "100000000/minute",
        "QUERY_COST_BUDGET": "10000000",
        "QUERY_COST_RESTORE_RATE": "1000000",
    }
    command = ["serve", "--port", str(port), "--workers", str(config.workers)]
    server = subprocess.Popen(
        [sys.executable, "-m", "flashsale", *command], env=env, stdout=subprocess.DEVNULL
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_ready(url, server)  # if not, the server's own stderr has said why
        result = Result(config)
        asyncio.run(
            _run(
                live,
                url,
                load,
                CpuMeter(server.pid),
                result,
                # SecantusDB takes minutes to drop a database after a thousand transactions.
                drop=settings.mongodb_uri is not None,
            )
        )
        return result
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        if embedded is not None:
            embedded.stop()
        shutil.rmtree(data_dir, ignore_errors=True)
