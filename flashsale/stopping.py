"""SIGINT and SIGTERM: stop the command and clean up, from whatever moment they come.

Installed first thing (flashsale.__main__), before any import that could take long. The
handler records the signal and raises Stop, a KeyboardInterrupt, so that it unwinds like
Ctrl-C from wherever it lands: no library's `except Exception` swallows it, and asyncio lets
it out of its callbacks and tasks. Code that might still lose it (a library catching
everything while it imports, an event loop's teardown) asks `requested()` before it goes on:
the record, not the exception, decides that the command stops.

Before `install`, the signal has the disposition the process was started with: Python's
KeyboardInterrupt from a terminal, but ignored when a shell without job control started the
command in the background (SIGINT is then ignored from exec on; that is how the lifecycle
test lost a Ctrl-C sent at once in CI)."""

import signal
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
received: list[int] = []


class Stop(KeyboardInterrupt):
    """A stop signal came: stop and clean up."""


def record(signum: int) -> None:
    """Note that a stop signal came (for a handler that does not raise, see flashsale.cli)."""
    received.append(signum)


def raise_stop(signum: int, frame: FrameType | None) -> None:
    record(signum)
    raise Stop


def install() -> None:
    for signum in STOP_SIGNALS:
        signal.signal(signum, raise_stop)


def requested() -> bool:
    """Whether a stop signal has come since `install` (even one whose Stop was swallowed)."""
    return bool(received)


def stop_if_requested() -> None:
    if received:
        raise Stop
