"""Stopping the background loops ends them even when a step swallows its cancel (PyMongo's
async cursors sometimes do): before, `stop` waited on that loop forever and swallowed its
own cancel too, which made a server's shutdown wait out its 10 s bound in silence."""

import asyncio

from reservations.background import BackgroundTasks
from services import Services


async def test_stop_ends_a_loop_whose_step_swallows_the_cancel(services: Services) -> None:
    background = BackgroundTasks(
        services.engine, services.background.persister, services.engine.database
    )
    swallowed = 0
    steps = 0
    inside = asyncio.Event()

    async def stubborn() -> None:
        nonlocal swallowed, steps
        steps += 1
        inside.set()
        try:
            await asyncio.Event().wait()  # until cancelled
        except asyncio.CancelledError:
            swallowed += 1  # ...and carry on as if nothing happened

    background.start_loops([("stubborn", 0.0, stubborn)])
    await inside.wait()
    # A guard against a hang, not a measure of speed: stop is bounded well below this.
    await asyncio.wait_for(background.stop(), 30)
    assert not background.running
    assert swallowed >= 1


async def test_a_cancelled_stop_is_cancelled(services: Services) -> None:
    """The caller's bound on stop (the server's close step) is honoured, even while a loop
    refuses to end."""
    background = BackgroundTasks(
        services.engine, services.background.persister, services.engine.database
    )
    inside = asyncio.Event()
    refusing = True

    async def stubborn() -> None:
        inside.set()
        while refusing:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                continue

    background.start_loops([("stubborn", 0.0, stubborn)])
    loop_task = background._tasks[0]
    await inside.wait()
    stopping = asyncio.create_task(background.stop())
    await asyncio.sleep(0)  # let stop begin: it now waits on the loop
    stopping.cancel()
    done, _ = await asyncio.wait([stopping], timeout=30)
    assert stopping in done
    assert stopping.cancelled()
    refusing = False  # this test's own loop: let it end, and stop it for good
    background._tasks = [loop_task]
    await asyncio.wait_for(background.stop(), 30)
    assert loop_task.done()
