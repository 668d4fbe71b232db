"""The Lua scripts, one file per transition, each registered once with the shared prelude
(`lua/prelude.lua`) in front, and run by SHA (EVALSHA, with redis-py reloading a script the
server forgot). Only reservations/store.py calls them (and
the waiting room's, reservations/waiting_room.py, through it)."""

import asyncio
from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster
from redis.commands.core import AsyncScript

NAMES = (
    "reserve",
    "release",
    "expire",
    "claim",
    "unclaim",
    "commit",
    "load",
    "set_rules",
    "lower_total",
    "forget",
    "repair",
    "room_join",
    "room_admit",
    "room_view",
)


class Scripts:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis
        folder = resources.files("reservations") / "lua"
        prelude = (folder / "prelude.lua").read_text()
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script(prelude + (folder / f"{name}.lua").read_text())
            for name in NAMES
        }

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[name](keys=keys, args=args)

    async def run_many(self, name: str, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
        """Run the script once per (keys, args), in one round trip where the client can: a
        pipeline on a single Redis (loading the script if the server lacks it). A Redis
        Cluster client refuses scripts in pipelines, so there the runs go out concurrently,
        each to the node that owns its keys."""
        if isinstance(self._redis, RedisCluster):
            return list(await asyncio.gather(*(self.run(name, keys, args) for keys, args in calls)))
        async with self._redis.pipeline(transaction=False) as pipe:
            for keys, args in calls:
                await self._scripts[name](keys=keys, args=args, client=pipe)
            return list(await pipe.execute())
