"""`flashsale serve` and `flashsale worker` as real child processes, for tests that need
the whole thing."""

import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
import weakref
from collections.abc import Iterator
from typing import Any

import httpx
import psutil

from flashsale.embedded import free_port
from flashsale.worker import READY_LINE
from tests.polling import wait_until

START_TIMEOUT = 60.0
STOP_TIMEOUT = 60.0
# A failing test's report shows what the children printed (see conftest).
CHILDREN: "weakref.WeakSet[ChildProcess]" = weakref.WeakSet()


def base_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MONGODB_URI", "REDIS_URL")}
    env["LOG_LEVEL"] = "WARNING"
    env["RATE_LIMITS_ENABLED"] = "false"  # the storms send far more than a user may
    env.update(extra)
    return env


class ChildProcess:
    """`flashsale <command>` as a child process, its output kept in a file."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.command = " ".join(["flashsale", *args])
        self._log = tempfile.TemporaryFile(mode="w+")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "flashsale", *args],
            env=env,
            # A file, not a pipe: nobody reads a pipe while the server runs, and a full
            # one (a few screens of logged errors) would block the server mid-request.
            stdout=self._log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.stopped_at: float | None = None  # time.time(), like pytest's CallInfo.start
        CHILDREN.add(self)
        self._wait_ready()
        self.tree = psutil.Process(self.process.pid).children(recursive=True)

    def ready(self) -> bool:
        raise NotImplementedError

    def seen_since(self, moment: float) -> bool:
        """Running, or stopped since `moment`."""
        return self.stopped_at is None or self.stopped_at >= moment

    def _wait_ready(self) -> None:
        def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"{self.process.args!r} exited:\n{self.output()}")
            return self.ready()

        try:
            wait_until(
                ready,
                within=START_TIMEOUT,
                every=0.2,
                failure=lambda: f"not ready in {START_TIMEOUT}s:\n{self.output()}",
            )
        except AssertionError:
            if self.process.poll() is None:
                self.stop(signal.SIGKILL)
            raise

    def output(self) -> str:
        """What the server has printed so far (or in all, once stopped)."""
        if self._log.closed:
            return self._last_output
        self._log.seek(0)
        return self._log.read()

    def named(self, fragment: str) -> list[psutil.Process]:
        return [p for p in self.tree if fragment in " ".join(p.cmdline())]

    def stop(self, sig: int = signal.SIGTERM) -> int:
        """Stop it with `sig`; asserts that every process it started is gone too."""
        self.stopped_at = self.stopped_at or time.time()
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            code = self.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            # Fail, but leave nothing running behind the test.
            for process in [*getattr(self, "tree", []), psutil.Process(self.process.pid)]:
                with contextlib.suppress(psutil.NoSuchProcess):
                    process.kill()
            self.process.wait()
            raise AssertionError(
                f"server did not stop within {STOP_TIMEOUT}s of {sig!r}:\n{self.output()}"
            ) from None
        finally:
            if self.process.poll() is not None and not self._log.closed:
                self._last_output = self.output()
                self._log.close()
        _, alive = psutil.wait_procs(getattr(self, "tree", []), timeout=30)
        assert alive == [], f"left running: {alive}"
        return code


class ServerProcess(ChildProcess):
    """`flashsale serve` on a free port, ready once /readyz answers 200."""

    def __init__(self, env: dict[str, str], *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        super().__init__(env, "serve", "--port", str(self.port), *args)

    def ready(self) -> bool:
        try:
            return httpx.get(f"{self.url}/readyz", timeout=1).status_code == 200
        except httpx.TransportError:
            return False

    def gql(self, query: str, token: str | None = None) -> dict[str, Any]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = httpx.post(f"{self.url}/graphql", json={"query": query}, headers=headers)
        body: dict[str, Any] = response.json()
        return body


class WorkerProcess(ChildProcess):
    """`flashsale worker`, ready once it says its loops run."""

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(env, "worker")

    def ready(self) -> bool:
        return READY_LINE in self.output()


def shared_env(servers: dict[str, str], database: str, **extra: str) -> dict[str, str]:
    """`base_env` for a server on the suite's Redis and MongoDB, in `database`."""
    return base_env(
        REDIS_URL=servers["redis_url"],
        MONGODB_URI=servers["mongodb_uri"],
        MONGODB_DB=database,
        **extra,
    )


@contextlib.contextmanager
def running(
    env: dict[str, str], count: int = 1, kind: type[ChildProcess] = ServerProcess
) -> Iterator[list[Any]]:
    """`count` processes of `kind`, all stopped afterwards (those started, if one fails)."""
    started: list[ChildProcess] = []
    try:
        for _ in range(count):
            started.append(kind(env))
        yield started
    finally:
        for process in started:
            process.stop()
