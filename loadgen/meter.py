"""Per-process measurements for the step results, and how the master merges them.

Locust's own statistics keep response times rounded to two significant
digits (147 ms is stored as 150 ms) so that workers can ship them cheaply;
percentiles computed from them are fine for a dashboard but not for a p99
claim. Each process therefore also records every echo latency, in
microseconds, in an HDR histogram (3 significant digits, 1 us .. 60 s). At a
step end the master asks every worker for a :class:`Snapshot`; histograms
travel in HdrHistogram's compressed encoding and add up exactly, so the
merged percentiles are those of all echoes from all workers.

Two clocks are kept apart:

* the *step* counters (connect attempts, failures by kind) cover the whole
  step, ramp included: a server refusing connections shows it in the ramp;
* the *window* (echo count, latency histogram) covers only the hold, from
  the master's "hold" mark to the step end, so ``rps`` is a steady rate.
  Each process times its own window (``window_s``), from the moment *it*
  handled the mark to the moment it handled the collect request: on a
  saturated worker those messages can lag by seconds, and its rate is
  its echoes over the time it actually counted them.

``connected`` is a live gauge (sockets this process holds open right now).

Recording is on the hot path (one call per echo, tens of thousands a second
per process), and HdrHistogram's pure-Python ``record_value`` costs about
1.2 us. :meth:`Meter.echo_ok` instead truncates the value to the histogram's
own resolution (3 significant digits: exact below 2048 us, then 11
significant bits) and counts it in a dict; the histogram is built from those
counts when a snapshot is taken. Same buckets, same percentiles, a tenth of
the cost, and the dict never holds more keys than the histogram has buckets.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIG_FIGS = 3
SUB_BUCKET_BITS = 11  # 2 * 10**SIG_FIGS rounded up to a power of two: 2048


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIG_FIGS)


class Meter:
    """What one process measured. Only greenlets of this process touch it, and
    gevent switches only at blocking calls, so plain counters need no locks."""

    def __init__(self) -> None:
        self.connected = 0
        self.serving = 0  # open connections that had at least one echo
        self.reset_step()

    def reset_step(self) -> None:
        self.connect_attempts = 0
        self.connect_failures: Counter[str] = Counter()
        self.failures: Counter[str] = Counter()
        self.mismatch: dict[str, Any] | None = None  # the step's first wrong reply
        # The most connections open at once in this step, and the most that had
        # an echo back: when a server dies mid-step, what it held at death (its
        # own stats die with it). "Open" counts handshakes the kernel completed
        # into the accept queue; "served" only connections the server accepted.
        self.peak_connected = getattr(self, "connected", 0)
        self.peak_served = getattr(self, "serving", 0)
        self.start_window()

    def start_window(self) -> None:
        self._latencies: dict[int, int] = {}  # us (truncated to HDR resolution) -> count
        self._window_start = time.monotonic()

    @property
    def histogram(self) -> HdrHistogram:
        """The window's latencies (microseconds) as an HDR histogram."""
        h = new_histogram()
        for us, n in self._latencies.items():
            h.record_value(us, n)
        return h

    # -- called by the client, once per event ---------------------------------
    def connect_started(self) -> None:
        self.connect_attempts += 1

    def connect_failed(self, kind: str) -> None:
        self.connect_failures[kind] += 1
        self.failures[kind] += 1

    def opened(self) -> None:
        self.connected += 1
        if self.connected > self.peak_connected:
            self.peak_connected = self.connected

    def closed(self, served: bool = False) -> None:
        self.connected -= 1
        if served:
            self.serving -= 1

    def served(self) -> None:
        """A connection's first echo came back: the server holds it, not only the kernel."""
        self.serving += 1
        if self.serving > self.peak_served:
            self.peak_served = self.serving

    def echo_ok(self, latency_s: float) -> None:
        us = int(latency_s * 1_000_000)
        if us >= 1 << SUB_BUCKET_BITS:
            if us > HIGHEST_US:
                us = HIGHEST_US
            shift = us.bit_length() - SUB_BUCKET_BITS
            us = us >> shift << shift
        elif us < LOWEST_US:
            us = LOWEST_US
        lat = self._latencies
        lat[us] = lat.get(us, 0) + 1

    def failed(self, kind: str) -> None:
        self.failures[kind] += 1

    def mismatched(self, sent: bytes, received: bytes) -> None:
        """Keep the step's first wrong reply: where it differs and 16 bytes of each side."""
        if self.mismatch is None:
            at = next((i for i, (a, b) in enumerate(zip(sent, received, strict=False))
                       if a != b), min(len(sent), len(received)))
            self.mismatch = {"offset": at, "sent": repr(bytes(sent[at:at + 16])),
                             "received": repr(bytes(received[at:at + 16]))}

    # -- step boundaries --------------------------------------------------------
    def snapshot(self, users: int) -> Snapshot:
        """The step so far; then start counting the next step."""
        window_s = time.monotonic() - self._window_start  # before the histogram is built
        snap = Snapshot(
            users=users,
            connected=self.connected,
            connect_attempts=self.connect_attempts,
            connect_failures=dict(self.connect_failures),
            failures=dict(self.failures),
            histogram=self.histogram,
            window_s=window_s,
            mismatch=self.mismatch,
            peak_connected=self.peak_connected,
            peak_served=self.peak_served,
        )
        self.reset_step()
        return snap


@dataclass
class Snapshot:
    """One process's share of one step."""

    users: int = 0
    connected: int = 0
    connect_attempts: int = 0
    connect_failures: dict[str, int] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    histogram: HdrHistogram = field(default_factory=new_histogram)
    window_s: float = 0.0  # how long this process counted echoes
    mismatch: dict[str, Any] | None = None  # the first reply that differed, if any
    peak_connected: int = 0
    peak_served: int = 0

    def to_message(self) -> dict[str, Any]:
        """Plain data for a Locust custom message (msgpack)."""
        return {
            "users": self.users,
            "connected": self.connected,
            "connect_attempts": self.connect_attempts,
            "connect_failures": self.connect_failures,
            "failures": self.failures,
            "histogram": self.histogram.encode(),
            "window_s": self.window_s,
            "mismatch": self.mismatch,
            "peak_connected": self.peak_connected,
            "peak_served": self.peak_served,
        }

    @classmethod
    def from_message(cls, data: dict[str, Any]) -> Snapshot:
        return cls(
            users=int(data["users"]),
            connected=int(data["connected"]),
            connect_attempts=int(data["connect_attempts"]),
            connect_failures=dict(data["connect_failures"]),
            failures=dict(data["failures"]),
            histogram=HdrHistogram.decode(data["histogram"]),
            window_s=float(data["window_s"]),
            mismatch=data.get("mismatch"),
            peak_connected=int(data.get("peak_connected") or 0),
            peak_served=int(data.get("peak_served") or 0),
        )


def merge(snapshots: list[Snapshot]) -> dict[str, Any]:
    """Sum the workers' shares; percentiles come from the summed histogram.

    ``rps`` is echo successes per second over the hold: the sum of each
    process's echoes over its own window.
    """
    total = new_histogram()
    connect_failures: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    for s in snapshots:
        total.add(s.histogram)
        connect_failures.update(s.connect_failures)
        failures.update(s.failures)
    count = total.get_total_count()

    def ms(value_us: float) -> float | None:
        return round(value_us / 1000.0, 3) if count else None

    return {
        "users": sum(s.users for s in snapshots),
        "connected": sum(s.connected for s in snapshots),
        "connect_attempts": sum(s.connect_attempts for s in snapshots),
        "connect_failures": dict(sorted(connect_failures.items())),
        "echo_count": count,
        "rps": round(sum(s.histogram.get_total_count() / s.window_s
                         for s in snapshots if s.window_s > 0), 3),
        "p50_ms": ms(total.get_value_at_percentile(50)),
        "p90_ms": ms(total.get_value_at_percentile(90)),
        "p99_ms": ms(total.get_value_at_percentile(99)),
        "max_ms": ms(total.get_max_value()),
        "failures": dict(sorted(failures.items())),
        "workers": len(snapshots),
        "mismatch_example": next((s.mismatch for s in snapshots if s.mismatch), None),
        # Each worker's own peak, summed: exact for one worker, an upper bound
        # for several (their peaks need not coincide).
        "peak_connected": sum(s.peak_connected for s in snapshots),
        "peak_served": sum(s.peak_served for s in snapshots),
    }
