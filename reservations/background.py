"""The engine's background loops, run in every API process or in a worker (same code):
expiry, waiting-room admissions and their record, the change-log persister, recovery of
abandoned checkouts and of products missing from Redis, and a full reconciliation of Redis
against MongoDB now and then. Each loop survives errors (logged) and stops on cancel."""

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from bson import ObjectId
from pymongo.asynchronous.database import AsyncDatabase

from models import Product
from reservations.persister import ChangeLogPersister
from reservations.reconcile import RECONCILE_SECONDS, Reconciler
from reservations.room_recorder import RoomRecorder
from reservations.service import ReservationEngine

logger = logging.getLogger("flashsale.background")

EXPIRY_TICK_SECONDS = 0.2
ADMIT_TICK_SECONDS = 0.2
PERSIST_TICK_SECONDS = 0.1
ROOM_RECORD_TICK_SECONDS = 0.5
RECOVERY_TICK_SECONDS = 5.0
PRODUCTS_REFRESH_SECONDS = 2.0
FINAL_FLUSH_SECONDS = 5.0
STOP_SECONDS = 3.0
STOP_POLL_SECONDS = 0.05
# A loop whose last success is older than this many of its periods (and at least
# STALE_MIN_SECONDS) makes the process not ready.
STALE_PERIODS = 20
STALE_MIN_SECONDS = 15.0


class BackgroundTasks:
    def __init__(
        self,
        engine: ReservationEngine,
        persister: ChangeLogPersister,
        database: AsyncDatabase[dict[str, Any]],
    ) -> None:
        self.engine = engine
        self.persister = persister
        self.reconciler = Reconciler(engine)
        self.room_recorder = RoomRecorder(engine.redis, database)
        self._products = Product.collection(database)
        self.product_ids: list[ObjectId] = []
        self.room_product_ids: list[ObjectId] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._last_ok: dict[str, float] = {}
        self._periods: dict[str, float] = {}
        self._stopping = False

    async def refresh_products(self) -> list[ObjectId]:
        """Every product's id, and apart those that have (or had) a waiting room: only
        their rooms are stepped and recorded, so a catalog without rooms costs the room
        loops nothing."""
        product_ids, room_product_ids = [], []
        async for doc in self._products.find({}, {"_id": 1, "waiting_room": 1}):
            product_ids.append(doc["_id"])
            if doc.get("waiting_room") is not None:
                room_product_ids.append(doc["_id"])
        self.product_ids, self.room_product_ids = product_ids, room_product_ids
        return self.product_ids

    async def start(self) -> None:
        await self.refresh_products()
        await self.engine.load_missing(self.product_ids)
        loops: list[tuple[str, float, Callable[[], Awaitable[Any]]]] = [
            ("products", PRODUCTS_REFRESH_SECONDS, self.refresh_products),
            ("expiry", EXPIRY_TICK_SECONDS, lambda: self.engine.expire_due(self.product_ids)),
            ("waiting room", ADMIT_TICK_SECONDS, lambda: self.engine.admit(self.room_product_ids)),
            ("persister", PERSIST_TICK_SECONDS, lambda: self.persister.run_once(self.product_ids)),
            (
                "room recorder",
                ROOM_RECORD_TICK_SECONDS,
                lambda: self.room_recorder.run_once(self.room_product_ids),
            ),
            ("recovery", RECOVERY_TICK_SECONDS, self._recover),
            ("reconcile", RECONCILE_SECONDS, lambda: self.reconciler.run(self.product_ids)),
        ]
        self.start_loops(loops)

    def start_loops(self, loops: list[tuple[str, float, Callable[[], Awaitable[Any]]]]) -> None:
        """Run each step every so many seconds, as a task of its own, until `stop`."""
        self._stopping = False
        now = time.monotonic()
        for name, every, _ in loops:
            self._last_ok[name] = now
            self._periods[name] = every
        self._tasks = [
            asyncio.create_task(self._loop(name, every, step), name=f"flashsale-{name}")
            for name, every, step in loops
        ]

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    def healthy(self) -> bool:
        """Every loop is alive and has succeeded recently (a loop that keeps failing, say
        because MongoDB refuses its writes, makes this false)."""
        now = time.monotonic()
        return all(not task.done() for task in self._tasks) and all(
            now - self._last_ok[name] <= max(STALE_MIN_SECONDS, STALE_PERIODS * every)
            for name, every in self._periods.items()
        )

    async def _recover(self) -> None:
        await self.engine.load_missing(self.product_ids)
        await self.engine.recover_claims(self.product_ids)

    async def _loop(self, name: str, every: float, step: Callable[[], Awaitable[Any]]) -> None:
        while not self._stopping:
            try:
                await step()
                self._last_ok[name] = time.monotonic()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("background %s step failed; retrying", name)
            await asyncio.sleep(every)

    async def stop(self) -> None:
        """Stop the loops, then persist what is already in the change logs. A step can
        swallow a cancel (PyMongo's async cursors sometimes do), so the loops also stop
        at their next turn, and one still running is cancelled again, every
        STOP_POLL_SECONDS, until it ends; after STOP_SECONDS it is left behind with a
        warning. A cancel of `stop` itself goes through."""
        self._stopping = True
        tasks, self._tasks = self._tasks, []
        pending = set(tasks)
        deadline = time.monotonic() + STOP_SECONDS
        while pending and time.monotonic() < deadline:
            for task in pending:
                task.cancel()
            _, pending = await asyncio.wait(pending, timeout=STOP_POLL_SECONDS)
        for task in tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                logger.error("background %s ended with %r", task.get_name(), task.exception())
        if pending:
            logger.warning(
                "background loops still running after %ss: %s",
                STOP_SECONDS,
                ", ".join(task.get_name() for task in pending),
            )
        # Persist what is already in the logs (bounded: whatever is left stays in the log,
        # where another process's persister picks it up).
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.persister.run_once(self.product_ids), FINAL_FLUSH_SECONDS)
