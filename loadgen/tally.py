"""Successful requests reach Locust's statistics in bulk, not one event each.

Locust's ``request`` event is a Python call chain per request: ``EventHook.fire``
copies its handler list and calls each with keyword arguments; the runner's
handler calls ``RequestStats.log_request``, which updates the per-name entry
*and* the total (``time.time()``, the response-times cache check, a rounding
function and four dict updates, twice). At 15,000 paced users that was ~12 %
of a worker's CPU (benchmarks/README.md, loadgen_capacity, the profile), more
than the echo's own ``recvmsg``.

A :class:`Tally` keeps, per (request type, name, wall-clock second), what
``StatsEntry.log`` would have added: the count, the sum, min and max of the
response times, the content length, and the count per rounded response time
(Locust's own ``bucket_response_time``, so the percentiles are the same). Every
``FLUSH_S``, before each report a worker sends its master (its handler runs
first: :meth:`Tally.install`), and when a test stops, it adds them to the
entry and to the total exactly as ``log`` does, second by second in order, so
``num_reqs_per_sec`` (current RPS) and the response-times cache (the current
percentiles) come out as if every request had been logged by itself. What
the web UI shows lags by at most ``FLUSH_S`` (it polls every 2 s; a worker
reports every 3 s).

Failures are rare and carry an exception, so they still fire the event one by
one. If anything else listens to the ``request`` event (a user's plugin, Locust's
OpenTelemetry hook), the tally steps aside and every request fires as before:
such a listener sees every success, as it expects.
"""

from __future__ import annotations

import time
from typing import Any

import locust.stats

FLUSH_S = 1.0


class _Second:
    """What one second's successes of one request name add to Locust's entry."""

    __slots__ = ("n", "total", "low", "high", "length", "buckets", "last")

    def __init__(self) -> None:
        self.n = 0
        self.total = 0.0
        self.low = float("inf")
        self.high = 0.0
        self.length = 0
        self.buckets: dict[int, int] = {}
        self.last = 0.0


class Tally:
    """One process's pending successes, added to ``environment.stats`` in bulk."""

    def __init__(self, environment: Any) -> None:
        self.environment = environment
        self._pending: dict[tuple[str, str, int], _Second] = {}
        self._timer = None

    @property
    def direct(self) -> bool:
        """True when some listener besides Locust's own wants every request."""
        return len(self.environment.events.request._handlers) != 1

    def ok(self, request_type: str, name: str, response_time: float, length: int) -> None:
        """One success: ``response_time`` in ms, as the event would carry it."""
        now = time.time()
        key = (request_type, name, int(now))
        s = self._pending.get(key)
        if s is None:
            s = self._pending[key] = _Second()
        s.n += 1
        s.total += response_time
        if response_time < s.low:
            s.low = response_time
        if response_time > s.high:
            s.high = response_time
        s.length += length
        s.last = now
        b = locust.stats.bucket_response_time(response_time)
        s.buckets[b] = s.buckets.get(b, 0) + 1

    def flush(self, **_: Any) -> None:
        """Add everything pending to Locust's statistics, oldest second first."""
        pending, self._pending = self._pending, {}
        stats = self.environment.stats
        for (request_type, name, t), s in sorted(pending.items(), key=lambda kv: kv[0][2]):
            for entry in (stats.total, stats.entries[(name, request_type)]):
                _add(entry, t, s)

    def install(self) -> None:
        """Flush every ``FLUSH_S`` on the event loop (a libev timer, no greenlet),
        first thing when a worker reports to its master, and when the test stops."""
        events = self.environment.events
        events.report_to_master._handlers.insert(0, self.flush)
        events.test_stopping.add_listener(self.flush)
        events.test_stop.add_listener(self.flush)
        if self._timer is None:
            from gevent import get_hub  # gevent: only inside Locust

            self._timer = get_hub().loop.timer(FLUSH_S, FLUSH_S)
            self._timer.ref = False  # it alone must not keep the loop running
            self._timer.start(self.flush)


def _add(entry: Any, t: int, s: _Second) -> None:
    """``StatsEntry.log`` for ``s.n`` requests of second ``t`` at once."""
    last = entry.last_request_timestamp
    if entry.use_response_times_cache and last and t > int(last):
        entry._cache_response_times(t - 1)  # as log() does at a second's first request
    entry.num_requests += s.n
    entry.num_reqs_per_sec[t] += s.n
    if last is None or s.last > last:
        entry.last_request_timestamp = s.last
    entry.total_response_time += s.total
    entry.min_response_time = s.low if entry.min_response_time is None else \
        min(entry.min_response_time, s.low)
    entry.max_response_time = max(entry.max_response_time, s.high)
    for b, n in s.buckets.items():
        entry.response_times[b] += n
    entry.total_content_length += s.length
