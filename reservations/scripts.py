"""The Lua scripts, one file per transition, loaded once and run by SHA (EVALSHA, with
redis-py reloading a script the server forgot)."""

from importlib import resources
from typing import Any

from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
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
)


class Scripts:
    def __init__(self, redis: Redis) -> None:
        folder = resources.files("reservations") / "lua"
        self._scripts: dict[str, AsyncScript] = {
            name: redis.register_script((folder / f"{name}.lua").read_text()) for name in NAMES
        }

    async def run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return await self._scripts[name](keys=keys, args=args)

    async def queue(self, pipe: Pipeline, name: str, keys: list[str], args: list[Any]) -> None:
        """Add a run to a pipeline (the pipeline loads the script if the server lacks it)."""
        await self._scripts[name](keys=keys, args=args, client=pipe)
