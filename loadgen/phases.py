"""A step's two phases, measured apart: the connect phase and the hold.

A step's new connections are opened in a burst (its ramp), and connects that
a listener's full queue dropped are retried into the hold. Mixed into the
hold's figures, one transient of the burst flips a verdict: the connect
timeouts of a 40,000-connection ramp divided by the echoes of a 5 s hold made
a 20% error rate at a step where every connection was made (issue 18). So
each process records, next to its :class:`~loadgen.meter.Meter`:

* the *connect phase*, over the whole step, ramp included: the latency of
  every successful connect (``socket()`` to established; a SYN dropped by a
  full SYN or accept queue is retransmitted after 1 s, 3 s, ...: it shows here
  as a slow connect, or as a ``timeout`` failure past ``--connect-timeout``)
  in HDR counts like the echo latency; the retries; the epoch times of the
  step's first attempt and of its last established connect;
* in the *hold window* (from the process's own hold mark, like the echo
  count): the failures of echoes and held connections, by kind, never connect
  failures; successful connects; and churn's arrivals, dropped arrivals and
  deliberate closes (:mod:`loadgen.arrivals`).

A connect *retry* is a connect attempt by a client whose previous connect
attempt failed (a user refused or timed out, trying again). A churn user
connecting again after a clean close is not a retry, nor is a reconnect
after an echo failure.

Shares travel as plain data (:meth:`Phases.message`, the connect histogram in
HdrHistogram's encoding) and :func:`merge_phases` adds them up exactly.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import TYPE_CHECKING, Any

from hdrh.histogram import HdrHistogram

from loadgen.hdr import count_into, histogram_of, latency_fields, new_histogram

if TYPE_CHECKING:
    from loadgen.meter import Snapshot


class Phases:
    """One process's connect phase and hold-window counters (one greenlet at a
    time touches them: no locks)."""

    def __init__(self) -> None:
        self.reset_step()
        self.start_window()

    def reset_step(self) -> None:
        self._connect_latencies: dict[int, int] = {}  # us -> count, every successful connect
        self.connect_retries = 0
        self.t_connect_start: float | None = None  # epoch s of the step's first attempt
        self.t_connect_end: float | None = None  # epoch s of its last established connect

    def start_window(self) -> None:
        self.hold_failures: Counter[str] = Counter()  # echo/hold failures in the window
        self.window_connects = 0  # successful connects in the window
        self.arrivals = 0  # churn arrivals scheduled in the window (open model)
        self.dropped = 0  # of them, found no free user
        self.closes = 0  # connections closed by this side on purpose (churn)

    # -- events -----------------------------------------------------------------
    def connect_started(self) -> None:
        if self.t_connect_start is None:
            self.t_connect_start = time.time()

    def connect_retried(self) -> None:
        """This attempt follows a failed attempt of the same client."""
        self.connect_retries += 1

    def connect_ok(self, latency_s: float) -> None:
        """A connect completed after ``latency_s`` (socket() to established)."""
        count_into(self._connect_latencies, latency_s)
        self.window_connects += 1
        self.t_connect_end = time.time()

    def hold_failed(self, kind: str) -> None:
        """An echo or a held connection failed (reset at the hold mark)."""
        self.hold_failures[kind] += 1

    def arrival(self, taken: bool) -> None:
        """One churn arrival: taken by a free user, or dropped (none was free)."""
        self.arrivals += 1
        if not taken:
            self.dropped += 1

    def closed_on_purpose(self) -> None:
        """A churn user closed its connection after its messages."""
        self.closes += 1

    @property
    def connect_histogram(self) -> HdrHistogram:
        return histogram_of(self._connect_latencies)

    def message(self) -> dict[str, Any]:
        """This process's share as plain data (msgpack)."""
        return {"connect_histogram": self.connect_histogram.encode(),
                "connect_retries": self.connect_retries,
                "t_connect_start": self.t_connect_start, "t_connect_end": self.t_connect_end,
                "hold_failures": dict(self.hold_failures),
                "window_connects": self.window_connects, "arrivals": self.arrivals,
                "dropped": self.dropped, "closes": self.closes}


def merge_phases(snapshots: list[Snapshot]) -> dict[str, Any]:
    """The phase keys of a step line, summed over the workers' shares.

    ``connect_*_ms`` come from the workers' connect histograms added up (exact,
    like the echo percentiles); ``t_connect_start``/``t_connect_end`` are the
    earliest first attempt and the latest established connect of any worker
    (null when none). ``hold_attempts`` is the window's echoes plus its hold
    failures; ``connects_per_s`` sums each process's connects over its own
    window, as ``rps`` does.
    """
    connects = new_histogram()
    hold_failures: Counter[str] = Counter()
    starts, ends = [], []
    total: Counter[str] = Counter()
    per_s = 0.0
    for s in snapshots:
        p = s.phases
        if p.get("connect_histogram"):
            connects.add(HdrHistogram.decode(p["connect_histogram"]))
        hold_failures.update(p.get("hold_failures") or {})
        starts += [p["t_connect_start"]] if p.get("t_connect_start") is not None else []
        ends += [p["t_connect_end"]] if p.get("t_connect_end") is not None else []
        total.update({k: int(p.get(k) or 0)
                      for k in ("connect_retries", "arrivals", "dropped", "closes")})
        if s.window_s > 0:
            per_s += int(p.get("window_connects") or 0) / s.window_s
    return {
        **latency_fields("connect_", connects),
        "connect_count": connects.get_total_count(),
        "connect_retries": total["connect_retries"],
        "t_connect_start": min(starts) if starts else None,
        "t_connect_end": max(ends) if ends else None,
        "hold_failures": dict(sorted(hold_failures.items())),
        "hold_attempts": (sum(s.histogram.get_total_count() for s in snapshots)
                          + sum(hold_failures.values())),
        "connects_per_s": round(per_s, 3),
        "arrivals": total["arrivals"],
        "dropped": total["dropped"],
        "closes": total["closes"],
    }
