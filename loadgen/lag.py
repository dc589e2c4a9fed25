"""How late this process's event loop runs: the generator's own queueing.

Every user of a load process waits on one gevent hub (libev, one thread):
its pace timer and its socket's readiness are libev watchers, and a watcher
whose event is due runs only when the loop gets round to it, after the
callbacks (the other users' greenlets) ahead of it in that loop iteration.
When the process is busy, or the kernel does not schedule it, every user's
wake-up is late by the same delay.

:class:`LagProbe` measures that delay directly: a one-shot libev timer,
re-armed every ``LAG_INTERVAL_S`` (15 ms), whose callback records how much
later than due it ran. Two details make it honest:

* both ends are read with ``perf_counter`` (CLOCK_MONOTONIC), never with
  ``loop.now()``: libev caches "now" once per loop iteration (``ev_now``),
  so a time read from it would hide the lateness of the iteration itself;
* the timer is armed with ``update=True`` (``ev_now_update`` first), so
  libev's idea of "due" is the real time of arming plus the interval, not
  the cached start of the iteration plus the interval (which would fire it
  early by up to an iteration and under-report the lag);
* a stall does not hide itself: a sample ``L`` late also stands for the
  samples the stall swallowed, due every interval after it, which are
  recorded as ``L - interval``, ``L - 2 * interval``, ... (HdrHistogram's
  ``recordValueWithExpectedInterval``, the coordinated-omission
  correction). The distribution is then the lateness of a timer due at any
  moment of the window, which is what a user's pace timer or reply sees: a
  200 ms stall in a 10 s window is 2% of the time, above the p99.

An idle loop sleeps in ``epoll_wait`` with a millisecond timeout (libev
rounds up), so a healthy probe reads 0-1 ms; a busy or descheduled process
reads its backlog.

The probe also tells when a backlog is gone (:meth:`LagProbe.when_caught_up`):
a ramp's last users start and connect in gevent's callbacks, ~100 per loop
iteration of 45-90 ms at 15,000 users, while the pace timers of the users
already connected fall due behind them. When the last has connected the hold
may begin, but ~1,000 sends (70 ms of the hold's echoes) are still overdue and
go out in a few iterations, queueing at the server: the ramp's tail, not the
hold's steady state. A hold window starts at the first sample that is on time
again (:mod:`loadgen.collect`). The callback is a plain function call on the hub (no
greenlet switch), about a microsecond 67 times a second. The timer does not
keep the loop alive (``ref=False``).
"""

from __future__ import annotations

from collections.abc import Callable
from time import perf_counter
from typing import Any

from gevent.hub import get_hub

LAG_INTERVAL_S = 0.015
# A sample at most this late: the loop has no backlog (a healthy loop reads 0-1 ms,
# libev's epoll timeout being rounded up to the millisecond).
CAUGHT_UP_S = 0.002


class LagProbe:
    """Feeds :meth:`loadgen.meter.Meter.loop_late` while started."""

    def __init__(self, meter: Any, interval: float = LAG_INTERVAL_S) -> None:
        self.meter = meter
        self.interval = interval
        self._loop = get_hub().loop
        self._timer: Any = None
        self._due = 0.0
        self._waiting: tuple[Callable[[], Any], float] | None = None  # when_caught_up

    def start(self) -> None:
        """Arm the next sample (also from its own callback: a libev one-shot
        timer cannot be restarted once fired, so each sample gets a new one)."""
        if self._timer is not None:
            self._timer.close()
        self._timer = self._loop.timer(self.interval, ref=False)
        self._due = perf_counter() + self.interval
        self._timer.start(self._fired, update=True)

    def when_caught_up(self, callback: Callable[[], Any], within: float) -> None:
        """Call ``callback`` (on the hub) at the first sample late by at most
        ``CAUGHT_UP_S``, or at the first one ``within`` s from now whatever its
        lateness (a worker that is behind for good: its lag is on record). A
        second call replaces a pending one."""
        self._waiting = (callback, perf_counter() + within)

    def caught_up_now(self) -> None:
        """Call the pending :meth:`when_caught_up` callback now, if any."""
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting[0]()

    def _fired(self) -> None:
        now = perf_counter()
        late = now - self._due
        self.meter.loop_late(late)
        on_time = late <= CAUGHT_UP_S
        late -= self.interval
        while late > 0:  # the samples the stall swallowed
            self.meter.loop_late(late)
            late -= self.interval
        waiting = self._waiting
        if waiting is not None and (on_time or now >= waiting[1]):
            self.caught_up_now()
        self.start()

    def stop(self) -> None:
        self._waiting = None
        if self._timer is not None:
            self._timer.close()
            self._timer = None
