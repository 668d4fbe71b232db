"""Another customer's hold and a hold that does not exist answer alike after the same work,
counted (Redis commands, scripts' inner calls included; MongoDB commands), never timed: for
cancel, checkout and the reservation(id) lookup. (Orders are read only through myOrders,
the caller's own: there is no order lookup by id.)"""

import dataclasses
from collections import Counter
from typing import Any

import httpx
from bson import ObjectId
from pymongo import AsyncMongoClient, monitoring

from graphql_api.app import create_app
from models import ReservationStatus
from reservations import ReservationEngine, ReservationId
from services import Services
from tests.conftest import GraphQL, signed_in
from tests.graphql_api.test_reservations import CANCEL, CHECKOUT, RESERVE, _product

LOOKUP = "query Q($r: ID!) { reservation(id: $r) { id status } }"


class Commands(monitoring.CommandListener):
    def __init__(self) -> None:
        self.seen: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        self.seen[event.command_name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


async def _redis_calls(services: Services) -> Counter[str]:
    stats: dict[str, Any] = await services.redis.info("commandstats")
    return Counter({name: int(value["calls"]) for name, value in stats.items()})


async def test_another_customers_hold_and_no_hold_answer_alike_after_the_same_work(
    services: Services,
) -> None:
    listener = Commands()
    mongo: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        services.settings.mongodb_uri, tz_aware=True, event_listeners=[listener]
    )
    engine = ReservationEngine(
        services.redis,
        mongo[services.settings.mongodb_db],
        default_hold_seconds=services.settings.reservation_ttl_seconds,
    )
    counted = dataclasses.replace(services, engine=engine)
    app = create_app(counted.settings, counted)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://test"
        ) as http:
            gql = GraphQL(http)
            product = await _product(services)
            _, owner = await signed_in(services)
            _, stranger = await signed_in(services)
            held = await gql(RESERVE, {"p": product, "q": 1}, token=owner)
            theirs = held["data"]["reserve"]["reservation"]["id"]
            nobodys = f"{product}{ObjectId()}"
            for warm in (CANCEL, CHECKOUT, LOOKUP):  # load the scripts, open the connections
                await gql(warm, {"r": nobodys}, token=stranger)

            for operation in (CANCEL, CHECKOUT, LOOKUP):
                answers, work = [], []
                for rid in (theirs, nobodys):
                    listener.seen.clear()
                    before = await _redis_calls(services)
                    answers.append(await gql(operation, {"r": rid}, token=stranger))
                    redis_work = await _redis_calls(services) - before
                    work.append((redis_work, Counter(listener.seen)))
                assert answers[0] == answers[1]
                if operation is LOOKUP:
                    assert answers[0]["data"] == {"reservation": None}
                else:
                    assert "RESERVATION_NOT_FOUND" in str(answers[0])
                assert work[0] == work[1], work

            hold = await services.engine.get(ReservationId.parse(theirs))
            assert hold is not None
            assert hold.status is ReservationStatus.ACTIVE  # nothing changed for its owner
    finally:
        await mongo.close()
