"""After a quiet spell longer than the MongoDB server keeps idle connections, the next
requests still work: the pool drops connections idle too long instead of reusing them. A
real SecantusDB with a 2 s idle timeout (the embedded default's is 5 minutes)."""

import asyncio
import tempfile

import pytest
from secantus import SecantusDBServer

import services
from services import mongo_client

SERVER_IDLE_SECONDS = 2.0


async def test_requests_after_a_quiet_spell_do_not_reuse_dead_connections(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(services, "MONGO_MAX_IDLE_MS", 1_000)
    server = SecantusDBServer(
        host="127.0.0.1",
        port=0,
        storage_path=tempfile.mkdtemp(prefix="flashsale-idle-"),
        client_idle_timeout_s=SERVER_IDLE_SECONDS,
    )
    server.start()
    host, port = server.address
    # The client alone: build_services would also bind the suite's document models to it.
    client = mongo_client(f"mongodb://{host}:{port}")
    try:
        collection = client["flashsale_idle"]["idle"]
        await asyncio.gather(*(collection.insert_one({"n": n}) for n in range(20)))
        # Past the server's idle timeout: it has closed every pooled connection.
        await asyncio.sleep(SERVER_IDLE_SECONDS * 2)
        # Multi-document writes: reads and single-document writes would be retried once on a
        # fresh connection, these are not.
        answers = await asyncio.gather(
            *(collection.delete_many({"n": n}) for n in range(20)),
            return_exceptions=True,
        )
        assert [getattr(answer, "deleted_count", answer) for answer in answers] == [1] * 20
    finally:
        await client.close()
        server.stop()
