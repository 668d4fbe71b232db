"""The Prometheus metrics every part reports to, exposed at `/metrics`.

One process: the default registry. Several API processes under one `flashsale serve
--workers N`: `PROMETHEUS_MULTIPROC_DIR` is set before the workers start (the CLI does it),
each writes its samples there, and `/metrics` on any of them adds them all up.
Labels are bounded: operations are named by their root field (a schema name, never the
client's operationName), outcomes by error code.
"""

import os

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector

REQUESTS = Counter(
    "flashsale_graphql_operations_total",
    "GraphQL operations, by type and first root field, and whether they had errors",
    ["operation", "outcome"],
)
LATENCY = Histogram(
    "flashsale_graphql_operation_duration_seconds",
    "Time to answer a GraphQL operation (parse, validate, execute), by operation",
    ["operation"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
RESERVATIONS = Counter(
    "flashsale_reservations_total",
    "reserve calls by outcome (RESERVED or the error code)",
    ["outcome"],
)
CHECKOUTS = Counter(
    "flashsale_checkouts_total",
    "checkout calls by outcome (COMPLETED or the error code)",
    ["outcome"],
)
HOLDS_EXPIRED = Counter("flashsale_holds_expired_total", "Holds ended by the expiry loop")
RATE_LIMITED = Counter(
    "flashsale_rate_limited_total",
    "Calls refused by a rate limit: ip (per address, HTTP requests and WebSocket operations), "
    "user (per-user writes), cost (budget), login (per e-mail address), ws_operations "
    "(operations in flight on one WebSocket)",
    ["limit"],
)
PERSISTED = Counter("flashsale_persisted_changes_total", "Change-log entries recorded in MongoDB")
PERSISTER_POISONED = Counter(
    "flashsale_persister_poisoned_total",
    "Change-log entries that could not be recorded (logged and skipped; the rest went through)",
)
PERSISTER_LAG = Gauge(
    "flashsale_persister_lag_seconds",
    "Age of the oldest change-log entry in the persister's last batch (0 when idle)",
    multiprocess_mode="max",
)
SUBSCRIPTIONS = Gauge(
    "flashsale_subscriptions",
    "Open GraphQL subscriptions",
    multiprocess_mode="livesum",
)


def exposition() -> tuple[bytes, str]:
    """The text format of every metric, from this process or from all of them."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
