"""The `flashsale` command as a user runs it: real processes, real ports, real signals."""

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flashsale.cli import BENCH_PACKAGES
from flashsale.embedded import free_port
from tests.processes import ServerProcess, base_env

ADMIN_PASSWORD = "cli-admin-password"


def _env(data_dir: Path) -> dict[str, str]:
    return base_env(DATA_DIR=str(data_dir), ADMIN_PASSWORD=ADMIN_PASSWORD)


def Server(data_dir: Path, *args: str) -> ServerProcess:
    return ServerProcess(_env(data_dir), *args)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


def _login_admin(server: ServerProcess) -> str:
    body = server.gql(
        f'mutation {{ login(email: "admin@flashsale.example", password: "{ADMIN_PASSWORD}")'
        " { token errors { code } } }"
    )
    token: str = body["data"]["login"]["token"]
    assert token, body
    return token


def _product_names(server: ServerProcess) -> list[str]:
    body = server.gql("{ products(first: 100) { edges { node { name } } } }")
    return [edge["node"]["name"] for edge in body["data"]["products"]["edges"]]


def test_serve_seeds_keeps_data_across_restarts_and_leaves_nothing_running(data_dir: Path) -> None:
    server = Server(data_dir)
    try:
        assert len(server.named("redis-server")) == 1
        assert len(server.named("flashsale.mongo_server")) == 1
        seeded = _product_names(server)
        assert {"Nimbus X phone", "Aero 14 laptop", "Pulse earbuds"} <= set(seeded)

        token = _login_admin(server)
        created = server.gql(
            'mutation { createProduct(input: {name: "Kept", price: "1.00", totalStock: 3})'
            " { product { id } } }",
            token,
        )
        assert created["data"]["createProduct"]["product"]["id"]

        # The data folder is locked while in use: a second server is refused...
        second = subprocess.run(
            [sys.executable, "-m", "flashsale", "serve", "--port", str(free_port())],
            env=_env(data_dir),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode == 1
        assert "in use by another flashsale process" in second.stderr
        # ...but `flashsale seed` finds the running servers and changes nothing twice.
        seed = subprocess.run(
            [sys.executable, "-m", "flashsale", "seed"],
            env=_env(data_dir),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert seed.returncode == 0, seed.stderr
        assert "0 created, 6 already there" in seed.stdout
    finally:
        assert server.stop(signal.SIGINT) == 0

    restarted = Server(data_dir)
    try:
        assert _product_names(restarted) == [*seeded, "Kept"]
        _login_admin(restarted)
    finally:
        assert restarted.stop() == 0


def test_workers_share_one_pair_of_embedded_servers(data_dir: Path) -> None:
    server = Server(data_dir, "--workers", "2")
    try:
        assert len(server.named("redis-server")) == 1
        assert len(server.named("flashsale.mongo_server")) == 1
        workers = [p for p in server.tree if "multiprocessing" in " ".join(p.cmdline())]
        assert len(workers) >= 2
        assert len(_product_names(server)) == 6
    finally:
        assert server.stop() == 0


def test_a_killed_cli_takes_its_servers_with_it(data_dir: Path) -> None:
    server = Server(data_dir)
    servers = server.named("redis-server") + server.named("flashsale.mongo_server")
    assert len(servers) == 2
    server.stop(signal.SIGKILL)  # asserts that every child is gone
    assert not any(p.is_running() for p in servers)


@pytest.mark.parametrize(
    ("env", "variable"),
    [
        ({"ENVIRONMENT": "production", "ADMIN_PASSWORD": "a-real-one"}, "JWT_SECRET"),
        ({"ENVIRONMENT": "production", "JWT_SECRET": "x" * 40}, "ADMIN_PASSWORD"),
        ({"RESERVATION_TTL_SECONDS": "soon"}, "RESERVATION_TTL_SECONDS"),
        ({"RESERVATION_TTL_SECONDS": "0"}, "RESERVATION_TTL_SECONDS"),
        ({"REDIS_URL": "http://localhost"}, "REDIS_URL"),
        ({"MONGODB_URI": "localhost:27017"}, "MONGODB_URI"),
        ({"ADMIN_EMAIL": "not-an-email"}, "ADMIN_EMAIL"),
        ({"ENVIRONMENT": "staging"}, "ENVIRONMENT"),
    ],
)
def test_bad_configuration_stops_start_up_naming_the_variable(
    data_dir: Path, env: dict[str, str], variable: str
) -> None:
    base = _env(data_dir)
    if "ADMIN_PASSWORD" not in env:
        base.pop("ADMIN_PASSWORD")
    result = subprocess.run(
        [sys.executable, "-m", "flashsale", "serve", "--port", str(free_port())],
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert variable in result.stderr
    assert "Traceback" not in result.stderr
    assert not data_dir.exists()  # refused before starting anything


@pytest.mark.parametrize("package", sorted(BENCH_PACKAGES))
def test_bench_without_the_bench_extra_says_what_to_install(data_dir: Path, package: str) -> None:
    """The image installs the runtime dependencies only: `flashsale bench` there names the
    extra it needs instead of an ImportError's traceback, and starts nothing."""
    hide = (
        f"import sys; sys.modules[{package!r}] = None; "
        "from flashsale.__main__ import run; raise SystemExit(run())"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide, "bench", "--requests", "10"],
        env=_env(data_dir),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2, result.stderr
    assert f"needs {package}" in result.stderr
    assert "--extra bench" in result.stderr
    assert "Traceback" not in result.stderr
    assert not data_dir.exists()
