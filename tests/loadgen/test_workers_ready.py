"""The master's wait for its workers ends when one connects, not on Locust's
next one-second poll (loadgen/workers_ready.py)."""

from __future__ import annotations

import time

import locust.main
import pytest
from locust.event import Events

from loadgen.workers_ready import WakeOnWorker, wake_on_worker_ready

pytestmark = pytest.mark.locust  # imports Locust (gevent patches the stdlib); loads nothing


@pytest.mark.timeout(10)
def test_a_worker_that_connected_ends_the_sleep_at_once():
    shim = WakeOnWorker(time)
    shim.worker_connected(client_id="w1")
    shim.sleep(30)  # Locust's poll asks for 1 s; 30 would trip the timeout
    start = time.monotonic()
    shim.sleep(0.05)  # the connect was used up: this one is a real sleep
    assert time.monotonic() - start >= 0.045
    assert shim.monotonic is time.monotonic  # every other name is the real module's


def test_installed_in_locust_main_until_the_test_starts():
    events = Events()
    try:
        shim = wake_on_worker_ready(events)
        assert shim is not None and locust.main.time is shim
        assert wake_on_worker_ready(Events()) is None  # once per process
        events.worker_connect.fire(client_id="w1")
        assert shim.connected.is_set()
        events.test_start.fire(environment=None)
        assert locust.main.time is time  # --autoquit and the rest sleep in full again
    finally:
        locust.main.time = time
