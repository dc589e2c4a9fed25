"""Teardown that a signal storm cannot interrupt.

Ctrl-C raises KeyboardInterrupt wherever the main thread happens to be; five
presses 0.1 s apart used to land inside the cleanup itself, so containers,
networks and processes were left behind. Like systemd's stop sequence, once
teardown starts a further SIGINT or SIGTERM is *noted, not obeyed*: the first
prints how to abandon, and only after ``ABANDON_AFTER`` more does the next one
raise (the user really wants out; ``run-lab clean`` removes what is left).
Signals less than ``STORM_S`` after the last one counted are one press: a
storm (a held key, a supervisor sending SIGTERM five times in half a second)
never abandons a teardown; a person pressing deliberately does.

Signal handlers run only in the main thread; elsewhere the shield is a no-op.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable
from typing import Any

ABANDON_AFTER = 3
STORM_S = 1.0


class Teardown:
    """``with Teardown(say):`` — SIGINT/SIGTERM are counted while the block runs."""

    def __init__(self, say: Callable[[str], None], abandon_after: int = ABANDON_AFTER):
        self.say, self.abandon_after = say, abandon_after
        self.signals: list[int] = []
        self._previous: dict[int, Any] = {}
        self.active = False
        self._last = 0.0  # when the last counted signal (or the teardown) began

    def _noted(self, signum: int, frame: Any) -> None:
        now = time.monotonic()
        if now - self._last < STORM_S:
            return  # part of the same storm
        self._last = now
        self.signals.append(signum)
        left = self.abandon_after - len(self.signals) + 1
        if left <= 0:
            self.say("iolab: teardown abandoned; run `scripts/run-lab clean` to remove what "
                     "is left")
            raise KeyboardInterrupt
        self.say(f"iolab: still tearing down — press Ctrl-C {left} more time"
                 f"{'s' if left > 1 else ''} to abandon; then run `scripts/run-lab clean`")

    def begin(self) -> None:
        """Start shielding (idempotent: the first call of a run's teardown wins,
        so presses are counted across its phases)."""
        if self.active:
            return
        self.active = True
        self._last = time.monotonic()
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._noted)

    def end(self) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()
        self.active = False

    def __enter__(self) -> Teardown:
        self.begin()
        return self

    def __exit__(self, *exc: object) -> None:
        self.end()

    @property
    def got_sigterm(self) -> bool:
        return signal.SIGTERM in self.signals


def attempt(what: str, action: Callable[[], Any], problems: list[str]) -> Any:
    """Run one teardown item; whatever it raises is recorded, never propagated,
    so the next item still runs."""
    try:
        return action()
    except Exception as exc:  # noqa: BLE001 - teardown goes on whatever one item did
        problems.append(f"{what}: {type(exc).__name__}: {exc}")
        return None
