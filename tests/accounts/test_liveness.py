"""The liveness check under a stampede of new shoppers: everyone asked about at one moment
is read from MongoDB together, and each gets its own user's answer."""

import asyncio
from collections.abc import Collection
from typing import Any

from bson import ObjectId
from pymongo import AsyncMongoClient

from accounts.liveness import CHECK_SECONDS, OUTAGE_SECONDS, Liveness
from flashsale.embedded import free_port
from models import Role, User
from services import Services
from tests.conftest import FrozenTime
from tests.polling import eventually

SHOPPERS = 200


async def test_a_stampede_of_new_users_costs_one_read_and_each_gets_its_answer(
    services: Services,
) -> None:
    users = await User.insert_many(
        services.database,
        [
            User(email=f"s{n}@example.com", password_hash="x", role=Role.CUSTOMER)
            for n in range(SHOPPERS)
        ],
    )
    collection = User.collection(services.database)
    await collection.update_one({"_id": users[1]}, {"$set": {"disabled": True}})
    await collection.delete_one({"_id": users[2]})
    reads: list[int] = []

    async def counted(user_ids: Collection[ObjectId]) -> dict[ObjectId, bool]:
        reads.append(len(user_ids))
        return await services.accounts._disabled(user_ids)

    liveness = Liveness(counted)
    # Each user asked about twice at once (two requests of one shopper).
    answers = await asyncio.gather(*(liveness.refusal(user) for user in users + users))

    expected = [None, "disabled", "unknown_user"] + [None] * (SHOPPERS - 3)
    assert answers == expected + expected
    assert reads == [SHOPPERS]
    # Remembered: asking again reads nothing.
    assert await liveness.refusal(users[1]) == "disabled"
    assert reads == [SHOPPERS]


async def test_while_mongodb_is_out_of_reach_no_request_waits_for_the_check(
    services: Services, frozen_time: FrozenTime
) -> None:
    """With MongoDB out of reach every request used to wait out server selection (3 s)
    for the check before its own work: reserve, Redis-only, took 3 s, and a call that then
    read MongoDB took twice that. Now the requests that asked when the outage began wait
    for that one read; after it, the answers stand at once while the check asks MongoDB in
    the background, at most once per OUTAGE_SECONDS, until a read succeeds."""
    known, unknown = ObjectId(), ObjectId()
    nowhere: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(
        f"mongodb://127.0.0.1:{free_port()}/?directConnection=true",
        serverSelectionTimeoutMS=200,
    )
    reads: list[int] = []
    ended: list[int] = []
    reachable = True

    async def lookup(user_ids: Collection[ObjectId]) -> dict[ObjectId, bool]:
        reads.append(len(user_ids))
        try:
            if reachable:
                return await services.accounts._disabled(user_ids)
            await nowhere["db"]["users"].find_one({"_id": {"$in": list(user_ids)}})
            raise AssertionError("a server answered on a port nobody listens on")
        finally:
            ended.append(len(user_ids))

    liveness = Liveness(lookup, clock=frozen_time.time)
    disabled = User(email="off@example.com", password_hash="x", role=Role.CUSTOMER, disabled=True)
    await disabled.insert(services.database)
    assert disabled.id is not None
    assert await liveness.refusal(disabled.id) == "disabled"
    reachable = False
    frozen_time.advance(CHECK_SECONDS)  # its answer is due again

    answers = await asyncio.gather(*(liveness.refusal(user) for user in (disabled.id, known)))
    assert answers == ["disabled", None]  # the last answer stands; a new user goes on
    assert reads == ended == [1, 2]  # they waited for the read that found the outage
    assert await liveness.refusal(unknown) is None
    assert await liveness.refusal(disabled.id) == "disabled"

    frozen_time.advance(OUTAGE_SECONDS)
    assert await liveness.refusal(unknown) is None  # answered before its read ended
    assert ended == [1, 2]

    async def asked() -> bool:
        return ended == [1, 2, 2]

    await eventually(asked, within=10, every=0.05, failure=lambda: f"reads {reads}")
    assert reads == [1, 2, 2]  # both asked after the outage began, in one read

    reachable = True  # MongoDB is back: the next read ends the outage
    frozen_time.advance(OUTAGE_SECONDS)
    assert await liveness.refusal(unknown) is None  # answered at once, asked meanwhile

    async def learned() -> bool:
        return await liveness.refusal(unknown) == "unknown_user"

    await eventually(learned, within=10, every=0.05, failure=lambda: f"reads {reads}")
    assert reads == [1, 2, 2, 1]
    await nowhere.close()
