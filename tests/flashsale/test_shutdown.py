"""SIGTERM on a real server process: it stops accepting, finishes the request in flight,
closes subscriptions with 1012 (service restart), records what its persister had not yet
written, and exits cleanly."""

import asyncio
import json
from decimal import Decimal

import pytest
from bson import ObjectId
from websockets.exceptions import ConnectionClosed

from catalog.validation import ProductDraft
from models import Reservation, ReservationStatus
from services import Services
from tests.conftest import signed_in
from tests.processes import STOP_TIMEOUT, ServerProcess, shared_env
from tests.ws import RECEIVE_TIMEOUT, session

RESERVE = """mutation R($p: ID!) { reserve(productId: $p, quantity: 2) {
  reservation { id status } errors { code } } }"""


async def test_sigterm_drains_in_flight_work_and_closes_subscriptions(
    servers: dict[str, str], services: Services
) -> None:
    product = await services.catalog.create(
        ProductDraft.parse(name="Last call", price=Decimal("9"), total_stock=5, max_per_customer=2)
    )
    token = (await signed_in(services))[1]
    body = json.dumps({"query": RESERVE, "variables": {"p": str(product.id)}}).encode()
    server = ServerProcess(shared_env(servers, services.settings.mongodb_db))
    try:
        async with session(server.url) as live:
            await live.subscribe(
                "subscription($p: [ID!]!) { stockChanged(productIds: $p) { available } }",
                {"p": [str(product.id)]},
            )
            assert (await live.next_data())["stockChanged"]["available"] == 5

            # A request in flight: the application is reading its body when SIGTERM lands
            # (it asked for the body: that is when the server sends "100 Continue").
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(
                b"POST /graphql HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\n"
                b"Expect: 100-continue\r\n"
                + f"Authorization: Bearer {token}\r\nContent-Length: {len(body)}\r\n\r\n".encode()
            )
            await writer.drain()
            go_on = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), RECEIVE_TIMEOUT)
            assert go_on.startswith(b"HTTP/1.1 100"), go_on
            server.process.terminate()

            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(live.socket.recv(), RECEIVE_TIMEOUT)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == 1012  # service restart: reconnect elsewhere

        with pytest.raises(ConnectionRefusedError):  # no longer accepting
            await asyncio.open_connection("127.0.0.1", server.port)

        writer.write(body)  # the body of the request in flight
        await writer.drain()
        head, _, payload = (await asyncio.wait_for(reader.read(), RECEIVE_TIMEOUT)).partition(
            b"\r\n\r\n"
        )
        writer.close()
        assert head.startswith(b"HTTP/1.1 200"), head
        assert b"connection: close" in head.lower()
        reservation = json.loads(payload)["data"]["reserve"]["reservation"]
        assert reservation["status"] == "ACTIVE"

        assert await asyncio.to_thread(server.process.wait, STOP_TIMEOUT) == 0
    finally:
        server.stop()

    # No process runs a persister now: the hold was recorded on the way out.
    recorded = await Reservation.get(services.database, ObjectId(reservation["id"][-24:]))
    assert recorded is not None
    assert recorded.status is ReservationStatus.ACTIVE
    assert product.id is not None
    counters = (await services.engine.counters([product.id]))[product.id]
    assert (counters.reserved, counters.available) == (2, 3)
