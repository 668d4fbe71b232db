"""Run by a test in its own process: check out a hold while MongoDB drops every connection,
and print the outcome. (In a child process because PyMongo's async driver leaves the sockets
of failed handshakes unclosed, which the test suite treats as an error.)"""

import asyncio
import sys

from pymongo import AsyncMongoClient
from redis.asyncio import Redis

from reservations import ReservationEngine, ReservationId
from reservations.errors import ReservationError


async def main(redis_url: str, reservation_id: str, now_ms: int) -> str:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.close()

    black_hole = await asyncio.start_server(hang_up, "127.0.0.1", 0)
    port = black_hole.sockets[0].getsockname()[1]
    mongo: AsyncMongoClient = AsyncMongoClient(  # type: ignore[type-arg]
        f"mongodb://127.0.0.1:{port}/?directConnection=true", serverSelectionTimeoutMS=300
    )
    redis = Redis.from_url(redis_url)
    engine = ReservationEngine(
        redis, mongo["flashsale"], default_hold_seconds=60, clock=lambda: now_ms
    )
    rid = ReservationId.parse(reservation_id)
    try:
        await engine.checkout(rid, None)
        return "CHECKED_OUT"
    except ReservationError as error:
        return error.code.value
    finally:
        await redis.aclose()
        await mongo.close()
        black_hole.close()


if __name__ == "__main__":
    print(asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]))))  # noqa: T201
