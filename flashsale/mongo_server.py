"""Runs the embedded SecantusDB server (`python -m flashsale.mongo_server`).

Our own launcher rather than `secantusd-py`, because its signal handler stops the server
re-entrantly: a second SIGTERM while the first is being handled deadlocks it. Here the
handler only sets a flag, the main thread stops the server exactly once, and the server also
stops when the process that started it dies (its parent id changes).
"""

import argparse
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from types import FrameType

from secantus import SecantusDBServer

_stop_requested = False


def _request_stop(signum: int, frame: FrameType | None) -> None:
    global _stop_requested
    _stop_requested = True


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--storage-path", required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s: %(message)s")

    parent = os.getppid()
    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
    server = SecantusDBServer(
        host=args.host,
        port=args.port,
        storage_path=args.storage_path,
        enable_test_commands=False,
        ttl_sweep_seconds=60.0,
        # Every commit is fsynced before it is acknowledged: an order the API confirmed
        # survives kill -9 of this process (commitTransaction ignores writeConcern j:true,
        # so only the server-wide flag makes transactions durable).
        sync_on_commit=True,
    )
    server.start()
    host, port = server.address
    print(f"listening on {host}:{port}", flush=True)  # noqa: T201 - read by the parent
    try:
        while not _stop_requested and os.getppid() == parent:
            time.sleep(0.2)
    finally:
        _wake_accept(server)
        server.stop()
    return 0


def _wake_accept(server: SecantusDBServer) -> None:
    """SecantusDB's stop() closes the listening socket and waits up to 2 s for its accept
    thread, but on Linux a close does not wake a thread blocked in accept(); a shutdown of
    the socket does, so the server stops at once instead of after that wait."""
    listening = getattr(server, "_socket", None)
    if isinstance(listening, socket.socket):
        with contextlib.suppress(OSError):
            listening.shutdown(socket.SHUT_RDWR)


if __name__ == "__main__":
    sys.exit(main())
