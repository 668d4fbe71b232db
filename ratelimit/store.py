"""Where the limits are counted: one Lua script (`lua/admit.lua`) counts a request in one
limit or in several, in order, atomically. The windows and the bucket say how they are
counted (`Count`: a key, the script's parameters, how to read its answer); this store is
the one place that builds the script's arguments and splits its reply.

A request's limits are counted in one round trip. A Redis Cluster runs a script only over
keys of one hash slot, so there the counts go out in runs of consecutive counts that share
a slot, one round trip per run, in order: the later runs wait for the earlier ones, so a
limit that refuses still leaves the ones after it uncounted."""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any, Generic, Literal, TypeVar

from redis.asyncio import Redis
from redis.asyncio.cluster import RedisCluster

from ratelimit.breaker import Breaker

T = TypeVar("T")


@dataclass(frozen=True, eq=False)
class Count(Generic[T]):
    """One request counted in one limit: its key, its kind and three parameters for the
    script, and how its three answered values (allowed, a, b) become the limit's answer
    (given the time, in seconds, they were counted at)."""

    key: str
    kind: Literal["window", "bucket"]
    parameters: tuple[int, int, int]
    read: Callable[[int, Any, Any, float], T]


class Counted:
    """What each count answered; None for those not reached (a count before them refused)."""

    def __init__(self, answers: dict[int, object]) -> None:
        self._answers = answers

    def of(self, count: Count[T]) -> T | None:
        return self._answers.get(id(count))  # type: ignore[return-value]


class LimitStore:
    def __init__(
        self,
        redis: Redis,
        clock: Callable[[], float] = time.time,
        breaker: Breaker | None = None,
    ) -> None:
        self.redis = redis
        self.clock = clock
        self.breaker = breaker or Breaker()
        source = (resources.files("ratelimit") / "lua" / "admit.lua").read_text()
        self._script = redis.register_script(source)

    @property
    def script_sha(self) -> str:
        """The SHA1 of the one script every count runs (EVALSHA)."""
        return str(self._script.sha)

    async def count(self, counts: Sequence[Count[Any]]) -> Counted:
        """Count one request in each of `counts`, in order, until one refuses: those after
        it are neither counted nor read. Atomic on one Redis; on a cluster, atomic per run
        of counts that share a slot. Raises RateLimitUnavailable if the store fails (the
        counts already made stay made)."""
        now = self.clock()
        answers: dict[int, object] = {}
        for run in self.runs(counts):
            args: list[str | int] = [int(now * 1000)]
            for count in run:
                args.extend((count.kind, *count.parameters))
            async with self.breaker.guard():
                reply = await self._script(keys=[c.key for c in run], args=args)
            for index, count in enumerate(run):
                if 3 * index >= len(reply):
                    return Counted(answers)
                allowed, a, b = reply[3 * index : 3 * index + 3]
                answers[id(count)] = count.read(int(allowed), a, b, now)
                if not int(allowed):
                    return Counted(answers)
        return Counted(answers)

    def runs(self, counts: Sequence[Count[Any]]) -> list[list[Count[Any]]]:
        """How `counts` go out: one run (one round trip) on one Redis; on a cluster, one
        per run of consecutive counts whose keys share a slot."""
        if not isinstance(self.redis, RedisCluster):
            return [list(counts)] if counts else []
        runs: list[list[Count[Any]]] = []
        slot = None
        for count in counts:
            here = self.redis.keyslot(count.key)
            if runs and here == slot:
                runs[-1].append(count)
            else:
                runs.append([count])
            slot = here
        return runs
