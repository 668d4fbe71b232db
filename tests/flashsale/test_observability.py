"""What operators see: Prometheus /metrics, JSON logs with the request id, readiness, on
real server processes."""

import asyncio
import json
import time
from decimal import Decimal
from typing import Any

import httpx
from bson import ObjectId
from prometheus_client.parser import text_string_to_metric_families

from catalog.validation import ProductDraft
from flashsale.container import Services
from models import Role
from tests.processes import ServerProcess, base_env, running, shared_env
from tests.ws import session

RESERVE = """mutation R($p: ID!) { reserve(productId: $p, quantity: 1) {
  reservation { id } errors { code } } }"""
WAIT_SECONDS = 15.0


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by name and sorted labels."""
    response = httpx.get(f"{url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def eventually(check: Any) -> None:
    """Poll `check()` until true, bounded (the background loops run on their own ticks)."""
    deadline = time.monotonic() + WAIT_SECONDS
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.2)


async def test_metrics_count_what_the_sale_did(servers: dict[str, str], services: Services) -> None:
    product = await services.catalog.create(
        ProductDraft.parse(
            name="Metered", price=Decimal("5"), total_stock=1, max_per_customer=1, hold_seconds=5
        )
    )
    env = shared_env(
        servers,
        services.settings.mongodb_db,
        RATE_LIMITS_ENABLED="true",
        RATE_LIMIT_PER_IP="8/minute",
        LOG_FORMAT="json",
        LOG_LEVEL="INFO",
    )
    with running(env) as (server,):
        url = server.url
        async with session(url) as live:
            await live.subscribe(
                "subscription($p: [ID!]!) { stockChanged(productIds: $p) { available } }",
                {"p": [str(product.id)]},
            )
            assert (await live.next_data())["stockChanged"]["available"] == 1  # snapshot
            assert value(scrape(url), "flashsale_subscriptions") == 1
        await eventually(lambda: value(scrape(url), "flashsale_subscriptions") == 0)

        async with httpx.AsyncClient(base_url=url) as http:
            outcomes = []
            for _ in range(2):  # the first holds the only unit, the second finds none
                token = services.accounts.tokens.issue(ObjectId(), Role.CUSTOMER)
                answer = await http.post(
                    "/graphql",
                    json={"query": RESERVE, "variables": {"p": str(product.id)}},
                    headers={"Authorization": f"Bearer {token}", "X-Request-ID": "trace-42"},
                )
                outcomes.append(answer.json()["data"]["reserve"]["errors"])
            assert outcomes == [[], [{"code": "OUT_OF_STOCK"}]]
            statuses = [
                (await http.post("/graphql", json={"query": "{ __typename }"})).status_code
                for _ in range(6)  # with the WebSocket handshake: 9 in the window of 8
            ]
            assert statuses == [200] * 5 + [429]

        samples = scrape(url)  # /metrics is not counted against the limit
        assert value(samples, "flashsale_reservations_total", outcome="RESERVED") == 1
        assert value(samples, "flashsale_reservations_total", outcome="OUT_OF_STOCK") == 1
        assert value(samples, "flashsale_rate_limited_total", limit="ip") == 1
        ok = {"operation": "mutation reserve", "outcome": "ok"}
        assert value(samples, "flashsale_graphql_operations_total", **ok) == 2
        assert (
            value(
                samples,
                "flashsale_graphql_operations_total",
                **{"operation": "query __typename", "outcome": "ok"},
            )
            == 5
        )
        assert (
            value(
                samples,
                "flashsale_graphql_operation_duration_seconds_count",
                operation="mutation reserve",
            )
            == 2
        )
        # The 5 s hold expires through the background loop, and the persister catches up.
        await eventually(
            lambda: (
                value(scrape(url), "flashsale_holds_expired_total") == 1
                and value(scrape(url), "flashsale_persisted_changes_total") >= 2
            )
        )
        assert value(scrape(url), "flashsale_persister_lag_seconds") < WAIT_SECONDS
        async with httpx.AsyncClient(base_url=url) as http:
            ready = (await http.get("/readyz")).json()
        assert ready == {
            "status": "ready",
            "checks": {"redis": True, "mongodb": True, "background": True},
        }
    logged = [json.loads(line) for line in server.output().splitlines() if line.startswith("{")]
    traced = [entry for entry in logged if entry.get("request_id") == "trace-42"]
    assert [entry["logger"] for entry in traced] == ["uvicorn.access", "uvicorn.access"]
    assert all({"time", "level", "logger", "message"} <= set(entry) for entry in logged)


def test_metrics_add_up_every_worker_of_one_server(tmp_path: Any) -> None:
    server = ServerProcess(base_env(DATA_DIR=str(tmp_path / "data")), "--workers", "2")
    try:
        with httpx.Client(base_url=server.url) as http:
            for _ in range(40):  # new connections: spread over both workers
                http.post(
                    "/graphql", json={"query": "{ __typename }"}, headers={"connection": "close"}
                )
        for _ in range(4):  # whichever worker answers, it reports all 40
            samples = scrape(server.url)
            operations = {"operation": "query __typename", "outcome": "ok"}
            assert value(samples, "flashsale_graphql_operations_total", **operations) == 40
    finally:
        server.stop()
