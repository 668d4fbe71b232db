"""What operators see: Prometheus /metrics, JSON logs with the request id, readiness, on
real server processes."""

import json
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from catalog.validation import ProductDraft
from services import Services
from tests.conftest import signed_in
from tests.polling import eventually
from tests.processes import ServerProcess, base_env, running, shared_env
from tests.ws import session

RESERVE = """mutation R($p: ID!) { reserve(productId: $p, quantity: 1) {
  reservation { id } errors { code } } }"""
WAIT_SECONDS = 15.0
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def samples_of(response: httpx.Response) -> Samples:
    """Every sample of a /metrics answer, keyed by name and sorted labels."""
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def metric(http: httpx.AsyncClient, name: str, **labels: str) -> float:
    return value(samples_of(await http.get("/metrics")), name, **labels)


async def becomes(http: httpx.AsyncClient, wanted: Callable[[Samples], bool]) -> None:
    """Wait (bounded) until the metrics satisfy `wanted`: the loops run on their own ticks."""

    async def check() -> bool:
        return wanted(samples_of(await http.get("/metrics")))

    await eventually(check, within=WAIT_SECONDS, every=0.2, failure=lambda: "metrics never did")


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
        async with httpx.AsyncClient(base_url=server.url) as http:
            async with session(server.url) as live:
                await live.subscribe(
                    "subscription($p: [ID!]!) { stockChanged(productIds: $p) { available } }",
                    {"p": [str(product.id)]},
                )
                assert (await live.next_data())["stockChanged"]["available"] == 1  # snapshot
                assert await metric(http, "flashsale_subscriptions") == 1
            await becomes(http, lambda samples: value(samples, "flashsale_subscriptions") == 0)

            outcomes = []
            for _ in range(2):  # the first holds the only unit, the second finds none
                token = (await signed_in(services))[1]
                answer = await http.post(
                    "/graphql",
                    json={"query": RESERVE, "variables": {"p": str(product.id)}},
                    headers={"Authorization": f"Bearer {token}", "X-Request-ID": "trace-42"},
                )
                outcomes.append(answer.json()["data"]["reserve"]["errors"])
            assert outcomes == [[], [{"code": "OUT_OF_STOCK"}]]
            statuses = [
                (await http.post("/graphql", json={"query": "{ __typename }"})).status_code
                # With the WebSocket handshake and its one operation: 10 in the window of 8.
                for _ in range(6)
            ]
            assert statuses == [200] * 4 + [429] * 2

            samples = samples_of(await http.get("/metrics"))  # not counted against the limit
            assert value(samples, "flashsale_reservations_total", outcome="RESERVED") == 1
            assert value(samples, "flashsale_reservations_total", outcome="OUT_OF_STOCK") == 1
            assert value(samples, "flashsale_rate_limited_total", limit="ip") == 2
            ok = {"operation": "mutation reserve", "outcome": "ok"}
            assert value(samples, "flashsale_graphql_operations_total", **ok) == 2
            assert (
                value(
                    samples,
                    "flashsale_graphql_operations_total",
                    **{"operation": "query __typename", "outcome": "ok"},
                )
                == 4
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
            await becomes(
                http,
                lambda samples: (
                    value(samples, "flashsale_holds_expired_total") == 1
                    and value(samples, "flashsale_persisted_changes_total") >= 2
                ),
            )
            assert await metric(http, "flashsale_persister_lag_seconds") < WAIT_SECONDS
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
        new_connection = {"connection": "close"}  # each request may reach either worker
        with httpx.Client(base_url=server.url, headers=new_connection) as http:
            for _ in range(40):
                http.post("/graphql", json={"query": "{ __typename }"})
            for _ in range(4):  # whichever worker answers, it reports all 40
                samples = samples_of(http.get("/metrics"))
                operations = {"operation": "query __typename", "outcome": "ok"}
                assert value(samples, "flashsale_graphql_operations_total", **operations) == 40
    finally:
        server.stop()
