"""Stampedes over HTTP against two real server processes sharing Redis and MongoDB, then
the invariants of SPEC.md checked in both stores."""

from collections.abc import Iterator

import pytest

from flashsale.container import Services
from tests.processes import ServerProcess, WorkerProcess, running, shared_env
from tests.reservations.storm import fifty_for_ten, storm


@pytest.fixture
def two_servers(servers: dict[str, str], services: Services) -> Iterator[list[ServerProcess]]:
    with running(shared_env(servers, services.settings.mongodb_db), 2) as started:
        yield started


async def test_fifty_shoppers_for_ten_units_on_two_processes(
    services: Services, two_servers: list[ServerProcess]
) -> None:
    await fifty_for_ten(services, [server.url for server in two_servers])


async def test_mixed_storm_keeps_every_invariant(
    services: Services, two_servers: list[ServerProcess]
) -> None:
    await storm(services, [server.url for server in two_servers])


async def test_workers_keep_the_sale_for_api_processes_without_background_tasks(
    servers: dict[str, str], services: Services
) -> None:
    """Expiry, the persister and recovery only in two `flashsale worker` processes (at once,
    on the same products); the two API processes only serve."""
    env = shared_env(servers, services.settings.mongodb_db, BACKGROUND_TASKS="false")
    with running(env, 2) as apis, running(env, 2, WorkerProcess):
        await storm(services, [api.url for api in apis])
