"""Only Redis being out of reach is answered "try again": an error Redis answers about what
it was sent (a script's bug) is raised as it is, so it is seen and fixed, not retried."""

import pytest
from redis.asyncio import Redis
from redis.exceptions import ResponseError

from reservations.errors import ServiceUnavailable
from reservations.store import StockStore
from services import Services


async def test_a_refused_command_is_not_an_outage(services: Services) -> None:
    store = StockStore(services.redis)
    refused = services.redis.execute_command("NO-SUCH-COMMAND")  # type: ignore[no-untyped-call]
    with pytest.raises(ResponseError):
        await store._call(refused)
    with pytest.raises(ResponseError):
        await store._run("reserve", [], [])  # a script called without its keys fails inside


async def test_redis_out_of_reach_is_an_outage(services: Services) -> None:
    closed = Redis(host="127.0.0.1", port=1, socket_connect_timeout=1)  # nothing listens
    try:
        with pytest.raises(ServiceUnavailable):
            await StockStore(closed)._call(closed.ping())
    finally:
        await closed.aclose()
