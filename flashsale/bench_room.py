"""`flashsale bench --waiting-room`: the same sale-start stampede on a product without a
waiting room and on one with it: every shopper wants one unit, more shoppers than units.

Without the room each shopper sends `reserve` the moment the sale starts and, while it is
refused with units still left, again; the fastest win. With the room every shopper joins
before the start, then reads its ticket (`myWaitingRoom`) every POLL_SECONDS and reserves
once admitted. Reported per mode: reserve calls and their latency, refusals, ticket reads,
units sold, and the time from the start to the last unit reserved."""

import asyncio
import statistics
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import Any

import aiohttp

from catalog.validation import ProductDraft, waiting_room_rule
from models.common import utcnow
from services import Services

JOIN = """mutation J($p: ID!) { joinWaitingRoom(productId: $p) {
  ticket { state } errors { code } } }"""
TICKET = "query T($p: ID!) { myWaitingRoom(productId: $p) { state } }"
RESERVE = """mutation R($p: ID!, $k: String) {
  reserve(productId: $p, quantity: 1, idempotencyKey: $k) {
    reservation { id } errors { code } } }"""
POLL_SECONDS = 0.25
LEAD_SECONDS = 5.0  # from creating the product to its sale's start: time to join
ADMISSION_SECONDS = 30
GIVE_UP_SECONDS = 120.0


@dataclass
class Stampede:
    room: bool
    units: int
    shoppers: int
    reserve_ms: list[float] = field(default_factory=list)
    outcomes: Counter[str] = field(default_factory=Counter)
    ticket_reads: int = 0
    sold_out_after: float | None = None
    """Seconds from the sale's start to the last unit reserved."""

    def describe(self) -> str:
        calls = len(self.reserve_ms)
        refused = calls - self.outcomes["RESERVED"]
        latency = "no reserve sent"
        if calls:
            ordered = sorted(self.reserve_ms)
            p99 = ordered[min(calls - 1, int(calls * 0.99))]
            latency = f"p50 {statistics.median(ordered):.1f} ms, p99 {p99:.1f} ms"
        sold_out = (
            f"sold out {self.sold_out_after:.2f} s after the start"
            if self.sold_out_after is not None
            else "not sold out"
        )
        outcomes = ", ".join(f"{k} {v}" for k, v in self.outcomes.most_common())
        return (
            f"  {'with' if self.room else 'without'} the waiting room: {self.shoppers} shoppers, "
            f"{self.units} units: {calls} reserve calls ({latency}), {refused} refused, "
            f"{self.ticket_reads} ticket reads; {sold_out} | {outcomes}"
        )


async def room_comparison(
    services: Services, url: str, shoppers: list[str], units: int
) -> list[str]:
    """Both stampedes on this server, one after the other, each on a product of its own."""
    lines = [f"waiting room: {len(shoppers)} shoppers for {units} units, one unit each"]
    for room in (False, True):
        lines.append((await _stampede(services, url, shoppers, units, room=room)).describe())
    return lines


async def _stampede(
    services: Services, url: str, shoppers: list[str], units: int, *, room: bool
) -> Stampede:
    starts = utcnow() + timedelta(seconds=LEAD_SECONDS)
    product = await services.catalog.create(
        ProductDraft.parse(
            name="Room drop" if room else "Stampede drop",
            price=Decimal("1.00"),
            total_stock=units,
            max_per_customer=1,
            sale_starts_at=starts,
            waiting_room=waiting_room_rule(
                enabled=True,
                opens_before_seconds=3600,
                admission_seconds=ADMISSION_SECONDS,
                oversubscription=Decimal(1),
            )
            if room
            else None,
        )
    )
    product_id = str(product.id)
    result = Stampede(room, units, len(shoppers))
    connector = aiohttp.TCPConnector(limit=200)
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(url, connector=connector, timeout=timeout) as http:

        async def post(query: str, variables: dict[str, Any], token: str) -> Any:
            async with http.post(
                "/graphql",
                json={"query": query, "variables": variables},
                headers={"Authorization": f"Bearer {token}"},
            ) as response:
                return await response.json()

        if room:
            gate = asyncio.Semaphore(100)

            async def join(token: str) -> None:
                async with gate:
                    await post(JOIN, {"p": product_id}, token)

            await asyncio.gather(*(join(token) for token in shoppers))
        # A moment after the start: asyncio may wake a little early, and a reserve before
        # the start would be refused SALE_NOT_ACTIVE.
        started = time.monotonic() + max(0.0, (starts - utcnow()).total_seconds()) + 0.05
        await asyncio.sleep(max(0.0, started - time.monotonic()))
        last_reserved = 0.0

        async def reserve(token: str) -> str:
            nonlocal last_reserved
            sent = time.perf_counter()
            body = await post(RESERVE, {"p": product_id, "k": uuid.uuid4().hex}, token)
            result.reserve_ms.append((time.perf_counter() - sent) * 1000)
            payload = (body.get("data") or {}).get("reserve") or {}
            if payload.get("reservation"):
                last_reserved = time.monotonic()
                outcome = "RESERVED"
            elif payload.get("errors"):
                outcome = str(payload["errors"][0]["code"])
            else:
                outcome = "ERROR"
            result.outcomes[outcome] += 1
            return outcome

        async def shopper(token: str) -> None:
            # Every unit held ends the stampede: the room would keep the rest waiting
            # until a hold ends (holds come back when they expire or are cancelled).
            deadline = time.monotonic() + GIVE_UP_SECONDS
            while time.monotonic() < deadline and not _sold_out(result, units):
                if room:
                    body = await post(TICKET, {"p": product_id}, token)
                    result.ticket_reads += 1
                    ticket = (body.get("data") or {}).get("myWaitingRoom") or {}
                    state = ticket.get("state")
                    if state in ("SOLD_OUT", "RESERVED", None):
                        return
                    if state != "ADMITTED":
                        await asyncio.sleep(POLL_SECONDS)
                        continue
                outcome = await reserve(token)
                if outcome == "SALE_NOT_ACTIVE":  # a clock a moment behind the server's
                    await asyncio.sleep(0.01)
                    continue
                if outcome == "NOT_ADMITTED":
                    continue
                if room or outcome != "OUT_OF_STOCK":
                    return
                await asyncio.sleep(POLL_SECONDS)  # refused: units may come back

        await asyncio.gather(*(shopper(token) for token in shoppers))
    if result.outcomes["RESERVED"] >= units:
        result.sold_out_after = last_reserved - started
    return result


def _sold_out(result: Stampede, units: int) -> bool:
    return result.outcomes["RESERVED"] >= units
