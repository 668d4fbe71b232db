"""The graphql-http audit suite (GraphQL-over-HTTP conformance) against a real server."""

import json
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from tests.processes import ServerProcess, running, shared_env

AUDIT_DIR = Path(__file__).parent.parent / "tools" / "graphql-http-audit"

pytestmark = pytest.mark.skipif(
    shutil.which("npm") is None, reason="needs Node.js and npm for the graphql-http audit"
)


@pytest.fixture
def server(servers: dict[str, str]) -> Iterator[ServerProcess]:
    database = f"flashsale_audit_{uuid.uuid4().hex[:8]}"
    try:
        with running(shared_env(servers, database)) as (process,):
            yield process
    finally:
        client: MongoClient[dict[str, Any]]
        with MongoClient(servers["mongodb_uri"]) as client:
            client.drop_database(database)


def test_graphql_over_http_audit_passes_without_warnings(server: ServerProcess) -> None:
    if not (AUDIT_DIR / "node_modules").exists():
        subprocess.run(
            ["npm", "ci", "--no-audit", "--no-fund", "--silent"],
            cwd=AUDIT_DIR,
            check=True,
            timeout=300,
        )
    audit = subprocess.run(
        ["node", "audit.mjs", f"{server.url}/graphql"],
        cwd=AUDIT_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    summary = json.loads(audit.stdout.strip().splitlines()[-1])
    assert audit.returncode == 0, audit.stdout + audit.stderr
    assert summary["error"] == 0
    assert summary["warn"] == 0, audit.stdout
    assert summary["ok"] >= 50
