"""The `flashsale` command: serve, worker, seed, reconcile, the benchmarks, schema."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import tempfile
from collections.abc import Coroutine, Iterator
from types import FrameType
from typing import Any, TypeVar

from core.errors import StoreUnreachable
from core.settings import ConfigurationError, Settings, load_settings
from flashsale import stopping
from flashsale.embedded import EmbeddedError, EmbeddedServers, running_endpoints, start_embedded
from flashsale.logs import configure_logging, log_config

logger = logging.getLogger("flashsale")
T = TypeVar("T")
GRACEFUL_SHUTDOWN_SECONDS = 10
# Longer than clients' and load balancers' idle timeouts (typically 5 to 60 s), so the
# client always closes an idle connection first. With equal timeouts (uvicorn's default is
# 5 s, like httpx's), a request can be sent on a connection the server is closing.
KEEP_ALIVE_SECONDS = 75


@contextlib.contextmanager
def resolved_settings(settings: Settings, *, may_reuse: bool) -> Iterator[Settings]:
    """Settings with MONGODB_URI and REDIS_URL filled in.

    Unset ones are served by embedded servers under DATA_DIR: started here (and stopped on
    exit), or, with `may_reuse`, those of a `flashsale serve` already running on that folder.
    """
    if settings.mongodb_uri and settings.redis_url:
        yield settings
        return
    servers: EmbeddedServers | None = None
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise EmbeddedError(f"DATA_DIR {settings.data_dir}: {exc.strerror or exc}") from None
    try:
        servers = start_embedded(
            settings.data_dir, redis=not settings.redis_url, mongo=not settings.mongodb_uri
        )
        endpoints = {"redis_url": servers.redis_url, "mongodb_uri": servers.mongodb_uri}
    except EmbeddedError:
        running = running_endpoints(settings.data_dir) if may_reuse else None
        if running is None:
            raise
        endpoints = running
    try:
        yield settings.model_copy(
            update={
                "redis_url": settings.redis_url or endpoints["redis_url"],
                "mongodb_uri": settings.mongodb_uri or endpoints["mongodb_uri"],
            }
        )
    finally:
        if servers is not None:
            servers.stop()


def _interruptible(work: Coroutine[Any, Any, T]) -> T:
    """asyncio.run(work), where SIGINT or SIGTERM cancels `work` (its cleanup runs) and then
    raises Stop. A signal that raised inside the event loop would land in whatever task
    runs at that moment, such as one of PyMongo's monitors; so the handler only records the
    signal and asks the loop to cancel `work`.

    The record, not the cancellation, decides: a cancellation can be swallowed on its way
    (Python 3.11's asyncio.wait_for returns the result of a call that finishes just as it
    is cancelled, bpo-42130), and a signal can come while asyncio.run is tearing down, when
    nothing is left to cancel. Either way the command stops (a signal was lost 1 time in
    40 with loop.add_signal_handler, and the server came up)."""
    stopping.stop_if_requested()

    async def main() -> T:
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()
        assert task is not None

        def on_signal(signum: int, frame: FrameType | None) -> None:
            stopping.record(signum)
            with contextlib.suppress(RuntimeError):  # the loop has closed: nothing to cancel
                loop.call_soon_threadsafe(task.cancel)

        for signum in stopping.STOP_SIGNALS:
            signal.signal(signum, on_signal)
        return await work

    try:
        done = asyncio.run(main())
    except asyncio.CancelledError:
        if not stopping.requested():
            raise
    finally:
        stopping.install()
    stopping.stop_if_requested()
    return done


async def _before_serving(live: Settings, *, demo: bool) -> None:
    """The stores answer (or StoreUnreachable ends the command in one line), and on the
    embedded default the demo data is complete (an interrupted seed is finished) and its
    accounts are announced."""
    from seed.demo import demo_accounts, seed_on_first_start
    from services import build_services

    services = await build_services(live)
    try:
        if demo:
            report = await seed_on_first_start(services)
            if report is not None:
                print(f"flashsale: demo data loaded\n{report.describe()}", flush=True)  # noqa: T201
            print(await demo_accounts(services), flush=True)  # noqa: T201
    finally:
        await services.close()


def _listen(host: str, port: int) -> socket.socket:
    """The listening socket, bound before anything else happens (raises OSError)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host.strip("[]"), port))
        sock.listen(2048)
    except BaseException:
        sock.close()
        raise
    sock.set_inheritable(True)  # the worker processes accept on it too
    return sock


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    import uvicorn
    from uvicorn.supervisors import Multiprocess

    # Listen first: nothing is started, seeded or announced for an address this process
    # cannot have (another server on the port, a host that does not resolve).
    try:
        sock = _listen(settings.host, settings.port)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        print(  # noqa: T201
            f"flashsale: cannot listen on {settings.host}:{settings.port}: {reason}",
            file=sys.stderr,
        )
        return 1
    # uvicorn shuts down gracefully on these signals and then re-raises them with the
    # handler it found; stopping's makes that re-raise (or a signal during start-up) unwind
    # through our cleanup, which stops the embedded servers, without a traceback. Installed
    # again here for callers of main() that did not come through flashsale.__main__.
    stopping.install()
    try:
        stopping.stop_if_requested()
        with resolved_settings(settings, may_reuse=False) as live:
            # Workers are separate processes: they read the endpoints from the environment.
            os.environ["MONGODB_URI"] = str(live.mongodb_uri)
            os.environ["REDIS_URL"] = str(live.redis_url)
            if settings.workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
                # /metrics on any worker then adds up all of them (see telemetry/).
                os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
                    prefix="flashsale-metrics-"
                )
            _interruptible(_before_serving(live, demo=settings.mongodb_uri is None))
            base = f"http://{settings.host}:{sock.getsockname()[1]}"
            print(  # noqa: T201
                f"flashsale: the store at {base}/ , the admin dashboard at {base}/admin ,\n"
                f"flashsale: the GraphQL API and GraphiQL at {base}/graphql",
                flush=True,
            )
            config = uvicorn.Config(
                "flashsale.asgi:create",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=settings.workers,
                log_level=settings.log_level.lower(),
                log_config=log_config(settings.log_level, settings.log_format),
                proxy_headers=False,
                ws="websockets-sansio",
                # A WebSocket message is bounded as a request body is (uvicorn's default:
                # 16 MiB, each one decoded whole, uncounted unless it is an operation).
                ws_max_size=settings.max_request_bytes,
                timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
                timeout_keep_alive=KEEP_ALIVE_SECONDS,
            )
            stopping.stop_if_requested()  # one that came and was swallowed on the way
            if settings.workers > 1:
                Multiprocess(config, sockets=[sock]).run()
                return 0
            server = uvicorn.Server(config)
            server.run(sockets=[sock])
            return 0 if server.started else 1
    except stopping.Stop:
        return 0
    finally:
        sock.close()


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from flashsale.worker import run_worker

    # Joins the embedded servers of a `flashsale serve` on the same DATA_DIR if one runs.
    with resolved_settings(settings, may_reuse=True) as live:
        asyncio.run(run_worker(live))
    return 0


def _seed(args: argparse.Namespace, settings: Settings) -> int:
    from seed.demo import run_seed

    with resolved_settings(settings, may_reuse=True) as live:
        report = asyncio.run(run_seed(live, orders=args.orders))
    print(report.describe())  # noqa: T201
    return 0


def _reconcile(args: argparse.Namespace, settings: Settings) -> int:
    from analytics.rollups import rebuild as rebuild_rollups
    from reservations import audit
    from services import build_services

    async def run(live: Settings) -> int:
        services = await build_services(live)
        try:
            ids = await services.background.refresh_products()
            if args.rebuild_rollups and not args.dry_run:
                await rebuild_rollups(services.database)
            repairs = await services.background.reconciler.run(ids, dry_run=args.dry_run)
            report = await audit(services.engine, ids)
        finally:
            await services.close()
        verb = "would repair" if args.dry_run else "repaired"
        found = [(repair.product_id, line) for repair in repairs for line in repair.findings()]
        print(f"checked {len(repairs)} products against MongoDB; {verb} {len(found)} things")  # noqa: T201
        for product_id, line in found:
            print(f"  product {product_id}: {line}")  # noqa: T201
        for problem in report.problems:
            print(f"  {problem}")  # noqa: T201
        print("invariants: " + ("OK" if report.ok else f"{len(report.problems)} problems"))  # noqa: T201
        if args.dry_run:
            return 0 if report.ok and not found else 1
        return 0 if report.ok else 1

    with resolved_settings(settings, may_reuse=True) as live:
        return asyncio.run(run(live))


def _user(args: argparse.Namespace, settings: Settings) -> int:
    from accounts.liveness import CHECK_SECONDS
    from services import build_services

    async def run(live: Settings) -> int:
        services = await build_services(live)
        try:
            user = await services.accounts.set_disabled(args.email, args.action == "disable")
        finally:
            await services.close()
        if user is None:
            print(f"flashsale: no user {args.email}", file=sys.stderr)  # noqa: T201
            return 1
        state = "disabled" if user.disabled else "enabled"
        print(f"{user.email} {state}; its tokens follow within {CHECK_SECONDS:g} s")  # noqa: T201
        return 0

    with resolved_settings(settings, may_reuse=True) as live:
        return asyncio.run(run(live))


BENCH_PACKAGES = frozenset({"aiohttp", "httpx", "psutil"})  # the bench extra


def _bench(args: argparse.Namespace, settings: Settings) -> int:
    def refuse(message: str) -> int:
        print(f"flashsale bench: {message}", file=sys.stderr)  # noqa: T201
        return 2

    try:
        from flashsale.bench import Config, Load
        from flashsale.bench_matrix import parse_configs, run_matrix
    except ImportError as exc:  # an install without the load generator (the image)
        if exc.name not in BENCH_PACKAGES:
            raise
        return refuse(
            f"the load generator needs {exc.name}, which is not installed: "
            "add the bench extra (uv sync --extra bench, or pip install 'flashsale[bench]')"
        )

    logging.getLogger("httpx").setLevel(logging.WARNING)

    if args.configs is None:  # one configuration, as given by --rate-limits and --workers
        configs = [Config(rate_limits=args.rate_limits, workers=args.workers or 1)]
    elif args.rate_limits or args.workers is not None:
        return refuse("--configs names the rate limits and processes; drop --rate-limits/--workers")
    else:
        try:
            configs = parse_configs(args.configs)
        except ValueError as exc:
            return refuse(str(exc))
    sizes = (args.requests, args.concurrency, args.read_concurrency, args.customers, args.rounds)
    counts = (args.stock, args.subscribers, args.waiting_room)
    if min(sizes) < 1 or min(counts) < 0 or (args.workers is not None and args.workers < 1):
        return refuse(
            "--requests, --concurrency, --read-concurrency, --customers, --rounds "
            "and --workers must be >= 1; --stock, --subscribers and --waiting-room >= 0"
        )
    load = Load(
        requests=args.requests,
        concurrency=args.concurrency,
        read_concurrency=args.read_concurrency,
        stock=args.stock,
        customers=args.customers,
        subscribers=args.subscribers,
        room_shoppers=args.waiting_room,
    )
    return run_matrix(settings, configs, load, args.rounds)


def _bench_stats(args: argparse.Namespace, settings: Settings) -> int:
    from flashsale.bench_stats import run_bench_stats

    return run_bench_stats(settings, args.sizes or [10_000, 100_000])


def _schema(args: argparse.Namespace, settings: Settings) -> int:
    from graphql_api.schema import sdl

    sys.stdout.write(sdl())
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="flashsale", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="run the API (embedded servers by default)")
    serve.add_argument("--host", help="address to listen on (default HOST, 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (default PORT, 8000)")
    serve.add_argument("--workers", type=int, help="API processes (default WORKERS, 1)")
    serve.set_defaults(handler=_serve)

    worker = commands.add_parser(
        "worker",
        help="run expiry, the persister and checkout recovery without the API "
        "(pair it with BACKGROUND_TASKS=false on the API processes)",
    )
    worker.set_defaults(handler=_worker)

    seed = commands.add_parser("seed", help="load demo data (safe to run twice)")
    seed.add_argument(
        "--orders", type=int, default=0, help="also add N historical orders over 30 days"
    )
    seed.set_defaults(handler=_seed)

    reconcile = commands.add_parser(
        "reconcile",
        help="repair Redis from MongoDB (counters, sales, claims, hold records), then audit",
    )
    reconcile.add_argument(
        "--dry-run",
        action="store_true",
        help="only report what would be repaired (exit 1 if anything)",
    )
    reconcile.add_argument(
        "--rebuild-rollups",
        action="store_true",
        help="recompute the daily sales rollups from the orders (stop the sale first)",
    )
    reconcile.set_defaults(handler=_reconcile)

    user = commands.add_parser("user", help="disable a user (its tokens stop working) or enable")
    user.add_argument("action", choices=["disable", "enable"])
    user.add_argument("email")
    user.set_defaults(handler=_user)

    bench = commands.add_parser(
        "bench",
        help="reserve stampede, stock-read storm and checkout benchmark, "
        "one or several server configurations side by side",
    )
    bench.add_argument("--requests", type=int, default=5_000, help="per phase (default 5000)")
    bench.add_argument("--concurrency", type=int, default=200, help="clients (default 200)")
    bench.add_argument(
        "--read-concurrency", type=int, default=100, help="clients for stock reads (default 100)"
    )
    bench.add_argument(
        "--customers",
        type=int,
        default=200,
        help="signed-in customers the reserve calls cycle through (default 200)",
    )
    bench.add_argument("--stock", type=int, default=1_000, help="units on sale (default 1000)")
    bench.add_argument("--workers", type=int, help="API processes (default 1)")
    bench.add_argument(
        "--rate-limits",
        action="store_true",
        help="count every request against the rate limits (quotas too high to refuse any), "
        "to measure what counting costs; off by default",
    )
    bench.add_argument(
        "--configs",
        help="run these configurations one after another, each on fresh servers, and "
        "compare them: on-N (rate limits counted) or off-N (RATE_LIMITS_ENABLED=false) "
        "with N API processes, e.g. on-1,off-1,on-2,off-2 (instead of --rate-limits and "
        "--workers)",
    )
    bench.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="repeat all the configurations N times, interleaved; the table shows medians",
    )
    bench.add_argument(
        "--subscribers",
        type=int,
        default=0,
        help="then measure live stock delivery to this many WebSocket subscribers",
    )
    bench.add_argument(
        "--waiting-room",
        type=int,
        default=0,
        metavar="SHOPPERS",
        help="then the same sale-start stampede of SHOPPERS for a tenth as many units, "
        "without and with a waiting room: reserve calls, refusals, time to sell out",
    )
    bench.set_defaults(handler=_bench)

    stats = commands.add_parser("bench-stats", help="salesStats over seeded orders")
    stats.add_argument(
        "--orders",
        dest="sizes",
        type=int,
        action="append",
        help="orders to seed (repeat it; default 10000 and 100000)",
    )
    stats.set_defaults(handler=_bench_stats)

    schema = commands.add_parser("schema", help="print the GraphQL schema (SDL)")
    schema.set_defaults(handler=_schema)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Options given on the command line are settings too, validated with the rest.
    given = {
        name: value
        for name in ("host", "port", "workers")
        if args.command == "serve" and (value := getattr(args, name, None)) is not None
    }
    try:
        settings = load_settings(**given)
    except ConfigurationError as exc:
        print(f"flashsale: {exc}", file=sys.stderr)  # noqa: T201
        return 2
    configure_logging(settings.log_level, settings.log_format)
    if (getattr(args, "workers", None) or 1) < 1 or getattr(args, "orders", 0) < 0:
        print("flashsale: --workers must be >= 1 and --orders >= 0", file=sys.stderr)  # noqa: T201
        return 2
    try:
        return int(args.handler(args, settings))
    except EmbeddedError as exc:
        print(f"flashsale: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    except StoreUnreachable as exc:
        print(f"flashsale: cannot start: {exc}", file=sys.stderr)  # noqa: T201
        return 1
    except KeyboardInterrupt:
        return 130
