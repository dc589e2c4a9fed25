"""Start a headless master's steps when its workers are ready, not up to a second later.

A headless Locust master waits for ``--expect-workers`` in
``locust.main.start_automatic_run``: it counts the ready workers, and while
too few, ``time.sleep(1)``. Its first count comes as the master starts,
before any worker's ``client_ready`` has arrived over ZeroMQ (a few
milliseconds later on loopback), so every run, and every model of a lab
run, began its first step a full second after the workers were there
(seen: worker ready at 23.350, "Shape test starting" at 24.352).

The wait reads ``time`` from ``locust.main``'s globals at run time, so
:func:`wake_on_worker_ready` gives that module a ``time`` whose ``sleep``
ends early when a worker connects (Locust's ``worker_connect`` event, fired
while the master registers the worker, which is done before the sleeping
greenlet runs again), and whose other names are the real module's. The
loop then counts again, exactly as after its own sleep. The shim is taken
out at ``test_start``: later sleeps in ``locust.main`` (``--autoquit``) keep
their full length. Locust is pinned (``constraints.txt``); a Locust without
that global or that event is left alone, and the wait is Locust's own.
"""

from __future__ import annotations

import time as real_time
from types import ModuleType
from typing import Any

import gevent.event
import locust.main


class WakeOnWorker:
    """A stand-in for the ``time`` module whose ``sleep`` a connecting worker cuts short."""

    def __init__(self, real: ModuleType) -> None:
        self.real = real
        self.connected = gevent.event.Event()

    def worker_connected(self, **_: Any) -> None:
        self.connected.set()

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, or until a worker connects (one that connected
        since the last sleep ends this one at once)."""
        self.connected.wait(seconds)
        self.connected.clear()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def wake_on_worker_ready(events: Any) -> WakeOnWorker | None:
    """Install the shim in ``locust.main`` (on a master) until the test starts."""
    if getattr(locust.main, "time", None) is not real_time or not hasattr(events, "worker_connect"):
        return None  # already installed, or not the Locust this was written for
    shim = WakeOnWorker(real_time)
    events.worker_connect.add_listener(shim.worker_connected)

    def restore(**_: Any) -> None:
        if locust.main.time is shim:
            locust.main.time = real_time

    events.test_start.add_listener(restore)
    locust.main.time = shim
    return shim
