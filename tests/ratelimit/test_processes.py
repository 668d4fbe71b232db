"""The limits hold across two real server processes sharing one Redis: concurrent requests
spread over both are counted in one window per address, one per user, one budget."""

import asyncio
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal

import httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Subprotocol

from catalog.validation import ProductDraft
from services import Services
from tests.conftest import signed_in
from tests.processes import ServerProcess, running, shared_env
from tests.ws import ws_url

RESERVE = """mutation R($p: ID!) { reserve(productId: $p, quantity: 1) {
  reservation { id } errors { code } } }"""


@pytest.fixture
def limited_servers(servers: dict[str, str], services: Services) -> Iterator[list[ServerProcess]]:
    env = shared_env(
        servers,
        services.settings.mongodb_db,
        RATE_LIMITS_ENABLED="true",
        RATE_LIMIT_PER_IP="30/minute",
        RATE_LIMIT_RESERVE_PER_USER="3/minute",
    )
    with running(env, 2) as started:
        yield started


@pytest.fixture
async def fresh_windows(services: Services) -> None:
    # Both processes count 127.0.0.1 under the default prefix: start from no count.
    async for key in services.redis.scan_iter(match="fs:rl:*", count=1000):
        await services.redis.delete(key)


async def test_address_and_user_limits_are_shared_by_processes(
    services: Services, fresh_windows: None, limited_servers: list[ServerProcess]
) -> None:
    product = await services.catalog.create(
        ProductDraft.parse(
            name="Phone", price=Decimal("5.00"), total_stock=100, max_per_customer=10
        )
    )
    shoppers = [(await signed_in(services))[1] for _ in range(4)]
    urls = [server.url for server in limited_servers]

    async with httpx.AsyncClient(timeout=30) as http:

        async def reserve(index: int, token: str) -> httpx.Response:
            return await http.post(
                f"{urls[index % 2]}/graphql",
                json={"query": RESERVE, "variables": {"p": str(product.id)}},
                headers={"Authorization": f"Bearer {token}"},
            )

        # 4 shoppers send 6 reserves each, all at once, alternating between processes:
        # 24 requests from one address (quota 30), 6 per user (quota 3).
        answers = await asyncio.gather(*(reserve(i, token) for token in shoppers for i in range(6)))
        assert {a.status_code for a in answers} == {200}
        per_user: dict[str, Counter[str]] = {}
        for index, answer in enumerate(answers):
            body = answer.json()
            code = body["errors"][0]["extensions"]["code"] if body.get("errors") else "RESERVED"
            per_user.setdefault(shoppers[index // 6], Counter())[code] += 1
        assert all(c == Counter({"RESERVED": 3, "RATE_LIMITED": 3}) for c in per_user.values())
        assert product.id is not None
        counters = await services.engine.counters([product.id])
        assert counters[product.id].reserved == 12

        # The address has used 24 of its 30 requests, whichever process counted them.
        more = await asyncio.gather(
            *(
                http.post(f"{urls[i % 2]}/graphql", json={"query": "{ __typename }"})
                for i in range(10)
            )
        )
        assert Counter(a.status_code for a in more) == Counter({200: 6, 429: 4})
        refused = next(a for a in more if a.status_code == 429)
        assert 1 <= int(refused.headers["retry-after"]) <= 61
        assert refused.headers["ratelimit-policy"] == '"ip";q=30;w=60'

    # WebSocket handshakes count against the same quota, and are refused with a 429 too.
    with pytest.raises(InvalidStatus) as handshake:
        async with connect(ws_url(urls[0]), subprotocols=[Subprotocol("graphql-transport-ws")]):
            pass
    assert handshake.value.response.status_code == 429
    assert handshake.value.response.headers["retry-after"]
