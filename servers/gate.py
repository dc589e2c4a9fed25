"""Signals: where SIGTERM/SIGINT may end the main thread's wait, and helper
threads that leave them to the main thread.

``run()`` (``servers/core.py``) installs ``on_signal`` for SIGTERM and SIGINT;
it raises ``Shutdown`` in the main thread, only inside ``blocking(...)``
waits (see ``_Gate``), and ``serve()`` ends.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from typing import Any


class Shutdown(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT: leave ``serve()`` now."""


# Signals that must reach the main thread: a process-directed signal can be
# delivered to any thread that does not block it, and then the main thread's
# blocking call is not interrupted (CPython runs handlers in the main thread).
MAIN_THREAD_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGIO}


def start_thread(target: Callable[..., Any], *args: Any, name: str | None = None) -> None:
    """Start a daemon helper thread that blocks ``MAIN_THREAD_SIGNALS``.

    RuntimeError when the thread cannot be started (the ``threads`` limit).
    """

    def body():
        signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREAD_SIGNALS)
        target(*args)

    threading.Thread(target=body, name=name, daemon=True).start()


class _Gate:
    """Where SIGTERM/SIGINT may raise ``Shutdown`` in the main thread.

    Raising from a signal handler at an arbitrary bytecode could land between
    a ``send`` and the counter update after it, and the final event would not
    match what the clients saw. So the handler raises only while the main
    thread is inside ``blocking(...)`` (a wait that the signal interrupts);
    anywhere else it records the signal and the next ``blocking`` call raises.
    """

    safe = False
    pending: int | None = None


GATE = _Gate()


def on_signal(signum, frame):
    if GATE.safe:
        GATE.safe = False
        raise Shutdown(signum)
    GATE.pending = signum


def blocking(fn, *args):
    """Call ``fn(*args)`` (main thread) so that SIGTERM/SIGINT can end the wait."""
    GATE.safe = True
    try:
        if GATE.pending is not None:
            raise Shutdown(GATE.pending)
        return fn(*args)
    finally:
        GATE.safe = False
