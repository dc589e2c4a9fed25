"""The event loop's lag probe (loadgen/lag.py): when a stalled loop is on time again."""

from __future__ import annotations

import gevent
import pytest
from gevent.monkey import get_original

from loadgen.lag import CAUGHT_UP_S, LagProbe

pytestmark = pytest.mark.locust  # gevent's hub; loads nothing

_block = get_original("time", "sleep")  # holds the loop: no greenlet or callback runs


class Log:
    """A meter that keeps the order of the samples and the catch-up."""

    def __init__(self) -> None:
        self.events: list[tuple[str, float]] = []

    def loop_late(self, late_s: float) -> None:
        self.events.append(("late", late_s))

    def caught_up(self) -> None:
        self.events.append(("caught up", 0.0))


def run_until(log: Log, what: str, limit_s: float = 10.0) -> None:
    waited = 0.0
    while all(e[0] != what for e in log.events) and waited < limit_s:
        gevent.sleep(0.01)
        waited += 0.01


def stalled(within: float) -> tuple[Log, LagProbe, int]:
    """A probe waiting to be caught up (``within``) while the loop stalls 60 ms
    (45 ms behind when the probe's timer is due); the log, the probe and where
    in the log the callback came."""
    log = Log()
    probe = LagProbe(log)
    probe.start()
    try:
        probe.when_caught_up(log.caught_up, within=within)
        _block(0.06)
        run_until(log, "caught up")
    finally:
        probe.stop()
    return log, probe, log.events.index(("caught up", 0.0))


def test_a_stalled_loop_is_caught_up_at_the_first_sample_on_time():
    log, _, at = stalled(within=60.0)
    first = log.events[0]
    assert first[0] == "late" and first[1] > 0.04  # the stall's sample does not count
    assert log.events[at - 1][0] == "late" and log.events[at - 1][1] <= CAUGHT_UP_S
    assert log.events.count(("caught up", 0.0)) == 1


def test_a_loop_still_behind_at_the_deadline_is_taken_as_it_is():
    log, probe, at = stalled(within=0.0)
    first = log.events[0][1]
    assert first > 0.04
    # at the first sample, late as it was: after it and the samples it stood for
    assert all(e[0] == "late" and abs(e[1] - (first - i * probe.interval)) < 1e-9
               for i, e in enumerate(log.events[:at]))


def test_caught_up_now_calls_a_pending_callback_once():
    log = Log()
    probe = LagProbe(log)
    probe.when_caught_up(log.caught_up, within=60.0)
    probe.caught_up_now()
    probe.caught_up_now()
    assert log.events == [("caught up", 0.0)]
