"""The engine's operations counted by outcome (the Prometheus counters live in telemetry)."""

import contextlib
from collections.abc import Iterator

from prometheus_client import Counter

from core.errors import InvalidInput
from reservations.errors import ReservationError


@contextlib.contextmanager
def counted(counter: Counter, success: str) -> Iterator[None]:
    """Counts one call under `success`, or under its error's code."""
    try:
        yield
    except ReservationError as error:
        counter.labels(error.code.value).inc()
        raise
    except InvalidInput:
        counter.labels("BAD_USER_INPUT").inc()
        raise
    counter.labels(success).inc()
