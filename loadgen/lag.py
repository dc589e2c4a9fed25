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
reads its backlog. The callback is a plain function call on the hub (no
greenlet switch), about a microsecond 67 times a second. The timer does not
keep the loop alive (``ref=False``).
"""

from __future__ import annotations

from time import perf_counter
from typing import Any

from gevent.hub import get_hub

LAG_INTERVAL_S = 0.015


class LagProbe:
    """Feeds :meth:`loadgen.meter.Meter.loop_late` while started."""

    def __init__(self, meter: Any, interval: float = LAG_INTERVAL_S) -> None:
        self.meter = meter
        self.interval = interval
        self._loop = get_hub().loop
        self._timer: Any = None
        self._due = 0.0

    def start(self) -> None:
        """Arm the next sample (also from its own callback: a libev one-shot
        timer cannot be restarted once fired, so each sample gets a new one)."""
        if self._timer is not None:
            self._timer.close()
        self._timer = self._loop.timer(self.interval, ref=False)
        self._due = perf_counter() + self.interval
        self._timer.start(self._fired, update=True)

    def _fired(self) -> None:
        late = perf_counter() - self._due
        self.meter.loop_late(late)
        late -= self.interval
        while late > 0:  # the samples the stall swallowed
            self.meter.loop_late(late)
            late -= self.interval
        self.start()

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.close()
            self._timer = None
