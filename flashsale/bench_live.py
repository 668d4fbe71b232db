"""`flashsale bench --subscribers N`: delivery latency of live stock, from the change (the
`at` the engine stamps in the same script) to each subscribed client, with N clients
subscribed over graphql-transport-ws to one product while it changes."""

import asyncio
import json
import time
from datetime import datetime
from decimal import Decimal
from typing import Any

import aiohttp

from catalog.validation import ProductDraft
from services import Services

SUBSCRIBE = """subscription S($p: ID!) { stockChanged(productIds: [$p]) { reserved at } }"""
RESERVE = """mutation R($p: ID!) { reserve(productId: $p, quantity: 1) { errors { code } } }"""
CONNECT_CONCURRENCY = 50


async def live_phase(
    services: Services, url: str, subscribers: int, shoppers: list[str], spacing: float = 0.1
) -> list[str]:
    """`subscribers` watch one product while each of `shoppers` (tokens) reserves a unit."""
    changes = len(shoppers)
    product = await services.catalog.create(
        ProductDraft.parse(
            name="Live drop", price=Decimal("1.00"), total_stock=changes, max_per_customer=1
        )
    )
    product_id = str(product.id)
    latencies: list[float] = []
    ready = 0
    all_ready = asyncio.Event()
    gate = asyncio.Semaphore(CONNECT_CONCURRENCY)
    timeout = aiohttp.ClientTimeout(total=None)
    # No connection limit: every subscriber holds its connection for the whole phase.
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(url, timeout=timeout, connector=connector) as http:

        async def subscriber() -> None:
            nonlocal ready
            async with gate:
                socket = await http.ws_connect("/graphql", protocols=["graphql-transport-ws"])
                await socket.send_json({"type": "connection_init", "payload": {}})
                await socket.receive_json()  # connection_ack
                await socket.send_json(
                    {
                        "id": "1",
                        "type": "subscribe",
                        "payload": {"query": SUBSCRIBE, "variables": {"p": product_id}},
                    }
                )
                await socket.receive_json()  # the snapshot
            ready += 1
            if ready == subscribers:
                all_ready.set()
            try:
                seen = 0
                while seen < changes:
                    message: Any = await socket.receive_json()
                    if message.get("type") != "next":
                        continue
                    at = message["payload"]["data"]["stockChanged"]["at"]
                    sent = _epoch_ms(at)
                    latencies.append(time.time() * 1000 - sent)
                    seen += 1
            finally:
                await socket.close()

        clients = [asyncio.create_task(subscriber()) for _ in range(subscribers)]
        started = time.perf_counter()
        await asyncio.wait_for(all_ready.wait(), 300)
        connect_seconds = time.perf_counter() - started

        for token in shoppers:
            async with http.post(
                "/graphql",
                data=json.dumps({"query": RESERVE, "variables": {"p": product_id}}),
                headers={"Authorization": f"Bearer {token}", "content-type": "application/json"},
            ) as answer:
                await answer.read()
            await asyncio.sleep(spacing)
        await asyncio.wait_for(asyncio.gather(*clients), 120)

    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]

    return [
        f"live stock: {subscribers} subscribers connected in {connect_seconds:.1f}s; "
        f"{changes} changes {spacing * 1000:.0f} ms apart; {len(ordered)} deliveries "
        f"(expected {subscribers * changes})",
        f"  change to client: p50 {pct(50):.1f} ms, p95 {pct(95):.1f} ms, "
        f"p99 {pct(99):.1f} ms, max {ordered[-1]:.1f} ms",
    ]


def _epoch_ms(iso: str) -> float:
    return datetime.fromisoformat(iso).timestamp() * 1000
