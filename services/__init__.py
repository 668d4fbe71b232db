"""The services a process runs, built from settings and closed at the end: the MongoDB and
Redis clients and the domain services on them. The composition root (flashsale: CLI, ASGI
entry, worker) builds them and hands them to the API; nothing here knows the API."""

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, cast

from bson import ObjectId
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import PyMongoError
from redis.asyncio import BlockingConnectionPool, Redis
from redis.asyncio.cluster import RedisCluster
from redis.exceptions import RedisError

from accounts.passwords import Passwords
from accounts.service import AccountService
from accounts.tokens import TokenService
from catalog.service import CatalogService
from core.errors import StoreUnreachable
from core.settings import Settings
from models import ensure_indexes
from ratelimit import RateLimits, build_rate_limits
from reservations import (
    CATALOG_CHANNEL,
    BackgroundTasks,
    ChangeLogPersister,
    EventHub,
    ReservationEngine,
)

READY_TIMEOUT_SECONDS = 2.0
# Pooled MongoDB connections idle longer than this are dropped, not reused: the embedded
# server closes a connection idle for 5 minutes (so do proxies and load balancers), and a
# reused dead connection failed the first requests after a quiet spell (AutoReconnect, and
# the pool's reset cancelling the others).
MONGO_MAX_IDLE_MS = 60_000
CLOSE_STEP_TIMEOUT_SECONDS = 10.0
logger = logging.getLogger("flashsale")


def _reason(exc: Exception) -> str:
    """The first clause of a driver's error: PyMongo's go on with timeouts and a topology."""
    text = str(exc) or type(exc).__name__
    for tail in (" (configured timeouts", ", Timeout:", ", full error:"):
        text = text.split(tail, 1)[0]
    return text


@dataclass
class Services:
    settings: Settings
    mongo: AsyncMongoClient  # type: ignore[type-arg]
    redis: Redis
    accounts: AccountService
    catalog: CatalogService
    engine: ReservationEngine
    background: BackgroundTasks
    rate_limits: RateLimits
    events: EventHub

    @property
    def database(self) -> AsyncDatabase[dict[str, Any]]:
        """The application's MongoDB database (MONGODB_DB), for the plain functions that
        take one (analytics, the seed)."""
        return self.mongo[self.settings.mongodb_db]

    async def readiness(self) -> dict[str, bool]:
        """Whether Redis and MongoDB answer, each within a short timeout, and, where this
        process runs them, whether the background loops are alive and succeeding."""

        async def check(probe: object) -> bool:
            try:
                await asyncio.wait_for(probe, READY_TIMEOUT_SECONDS)  # type: ignore[arg-type]
            except Exception:
                return False
            return True

        redis_ok, mongo_ok = await asyncio.gather(
            check(self.redis.ping()), check(self.mongo.admin.command("ping"))
        )
        checks = {"redis": redis_ok, "mongodb": mongo_ok}
        if self.background.running:
            checks["background"] = self.background.healthy()
        return checks

    async def _close_redis(self) -> None:
        if isinstance(self.redis, RedisCluster):
            await self.redis.aclose()
        else:  # the pool was passed in, so aclose() would leave its sockets open by default
            await self.redis.aclose(close_connection_pool=True)

    async def close(self) -> None:
        """Stop the background loops and close the clients; each step is bounded, so a
        stuck connection can never keep a process from exiting."""
        steps: list[tuple[str, Callable[[], Awaitable[object]]]] = [
            ("background tasks", self.background.stop),
            ("event hub", self.events.close),
            ("redis", self._close_redis),
            ("mongodb", self.mongo.close),
        ]
        for name, step in steps:
            try:
                await asyncio.wait_for(step(), CLOSE_STEP_TIMEOUT_SECONDS)
            except TimeoutError:
                logger.error(
                    "closing %s took over %ss; abandoned", name, CLOSE_STEP_TIMEOUT_SECONDS
                )
            except Exception:
                logger.exception("closing %s failed", name)


def rate_limits_from(redis: Redis, settings: Settings, **options: Any) -> RateLimits:
    """The limits as configured; `options` go to `build_rate_limits` (prefix, clock)."""
    return build_rate_limits(
        redis,
        enabled=settings.rate_limits_enabled,
        per_ip=settings.rate_limit_per_ip,
        per_user_write=settings.rate_limit_reserve_per_user,
        cost_budget=settings.query_cost_budget,
        cost_restore_rate=settings.query_cost_restore_rate,
        **options,
    )


def redis_client(url: str, *, cluster: bool) -> Redis:
    """One client for the process. A cluster client speaks the same commands (it routes each
    by its key's slot), so the rest of the code takes either as a `Redis`."""
    if cluster:
        return cast(Redis, RedisCluster.from_url(url, decode_responses=True, max_connections=128))
    return Redis(
        connection_pool=BlockingConnectionPool.from_url(
            url, max_connections=128, timeout=5, decode_responses=True
        )
    )


def mongo_client(uri: str) -> AsyncMongoClient:  # type: ignore[type-arg]
    """The process's MongoDB client, as every part of it is configured."""
    return AsyncMongoClient(
        uri, tz_aware=True, serverSelectionTimeoutMS=3_000, maxIdleTimeMS=MONGO_MAX_IDLE_MS
    )


async def build_services(settings: Settings) -> Services:
    if settings.mongodb_uri is None or settings.redis_url is None:
        raise ValueError("MONGODB_URI and REDIS_URL must be set (the CLI starts embedded ones)")
    mongo = mongo_client(settings.mongodb_uri)
    database = mongo[settings.mongodb_db]
    try:
        await ensure_indexes(database)
    except PyMongoError as exc:
        await mongo.close()
        raise StoreUnreachable(f"MongoDB (MONGODB_URI): {_reason(exc)}") from None
    redis = redis_client(settings.redis_url, cluster=settings.redis_cluster)
    try:
        await redis.ping()
    except RedisError as exc:
        await mongo.close()
        await redis.aclose()
        raise StoreUnreachable(f"Redis (REDIS_URL): {_reason(exc)}") from None
    tokens = TokenService(settings.jwt_secret, settings.jwt_ttl_seconds)
    engine = ReservationEngine(
        redis, database, default_hold_seconds=settings.reservation_ttl_seconds
    )
    events = EventHub(redis)

    async def announce(product_id: ObjectId) -> bool:
        return await events.publish(CATALOG_CHANNEL, {"product": str(product_id)})

    return Services(
        settings=settings,
        mongo=mongo,
        redis=redis,
        accounts=AccountService(database, tokens, Passwords()),
        catalog=CatalogService(database, stock=engine, announce=announce),
        engine=engine,
        background=BackgroundTasks(engine, ChangeLogPersister(redis, database), database),
        events=events,
        rate_limits=rate_limits_from(redis, settings),
    )


@asynccontextmanager
async def running_services(settings: Settings) -> AsyncIterator[Services]:
    """The services of a serving process: built, their background loops started when
    BACKGROUND_TASKS is on, and closed at the end."""
    services = await build_services(settings)
    try:
        if settings.background_tasks:
            await services.background.start()
        yield services
    finally:
        await services.close()
