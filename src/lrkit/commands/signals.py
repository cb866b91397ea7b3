"""SIGTERM as Ctrl-C: a batch system preempting a worker (or ``kill``) gets the clean-up and
the one-line note that Ctrl-C gets, not Python's silent exit with no clean-up."""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator
from typing import Any

#: the exit status of a command ended by SIGTERM (128 + 15, as a shell reports it)
TERMINATED_EXIT = 128 + signal.SIGTERM


class Terminated(KeyboardInterrupt):
    """Raised where the process is when SIGTERM arrives: every handler of ``KeyboardInterrupt``
    (a finder's restore, a tune trial failed and its study kept) runs as for Ctrl-C."""


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """While the block runs, SIGTERM raises :class:`Terminated`, once: the handler that was
    there before is put back at once, so a second SIGTERM acts as it did. Only in the main
    thread (the one Python delivers signals to); elsewhere nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.getsignal(signal.SIGTERM)

    def on_sigterm(signum: int, frame: Any) -> None:
        signal.signal(signal.SIGTERM, previous)
        raise Terminated

    signal.signal(signal.SIGTERM, on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
