"""The liveness check under a stampede of new shoppers: everyone asked about at one moment
is read from MongoDB together, and each gets its own user's answer."""

import asyncio
from collections.abc import Collection

from bson import ObjectId

from accounts.liveness import Liveness
from models import Role, User
from services import Services

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
