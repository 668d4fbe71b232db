"""`flashsale worker`: the background work without the API.

Runs what every API process runs by default (`BACKGROUND_TASKS`): the expiry loop, the
change-log persister and the recovery sweep. Start it beside API processes that have
`BACKGROUND_TASKS=false` so the two scale apart; any number of workers (and API processes
that still run the loops) may run at once, because every step is safe to race: expiry pops
each hold in one script, the persister reads through a Redis consumer group, and the
recovery sweep settles each claim idempotently.
"""

import asyncio
import logging
import signal

from core.settings import Settings
from services import build_services

logger = logging.getLogger("flashsale.worker")

READY_LINE = "flashsale worker: expiry, persister and recovery running"


async def run_worker(settings: Settings) -> None:
    """Until SIGTERM or SIGINT; then the loops stop between steps and the clients close."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    services = await build_services(settings)
    try:
        await services.background.start()
        print(READY_LINE, flush=True)  # noqa: T201 - operators and tests wait for it
        await stop.wait()
        logger.info("stopping")
    finally:
        await services.close()
