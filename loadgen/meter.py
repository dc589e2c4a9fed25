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
  An echo belongs to the window it was *sent* in (the client's send time,
  ``perf_counter``): one sent in the ramp carries the ramp's wait, so it is
  not the hold's; a failure of it counts only in the step's failures.
  Each process times its own window (``window_s``), from the moment *it*
  handled the mark (and its loop was on time, :mod:`loadgen.collect`) to
  the moment it handled the collect request: on a saturated worker those
  messages can lag by seconds; its rate is its echoes over that time.

The connect phase and the hold's own failures are kept apart by
:mod:`loadgen.phases` (``Meter.phases``), whose share travels in the
snapshot and whose keys :func:`merge` adds to the step line.

``connected`` is a live gauge (sockets this process holds open right now).

User groups (``--groups``): each group has a child meter of its own
(:meth:`Meter.group`), and each of the group's clients records into both, the
process's meter and its group's (:class:`loadgen.groups.Tee`). The children's snapshots
travel inside the process's, and :func:`merge` merges each group across the
workers exactly as it merges the totals (:func:`merge_groups`): the totals stay
all-groups.

The window also times the process itself, so the master can tell a
generator-bound step from a server-bound one (:mod:`contract.generator`):

* ``cpu``: user+sys CPU seconds of this process (``os.times()``: every
  thread, ZeroMQ's included) over the window, as a fraction of one core.
  Python runs the users on one core, so 1.0 is the ceiling.
* ``lag_p99_ms``/``lag_max_ms``: how late a periodic timer on this
  process's event loop fired (:mod:`loadgen.lag`), the wake-up delay every
  user's timer and socket event also waited.
* ``rss_bytes``: this process's resident memory at the step's end
  (``/proc/self/statm``): the users' greenlets, sockets' Python objects and
  buffers. The master sums them, with its own, into ``loadgen_rss_bytes``,
  the load's share of the whole lab's memory.
* ``host`` (``socket.gethostname()``: in a container, its id prefix); the
  master adds the Locust node id.

Recording is on the hot path (one call per echo, tens of thousands a second
per process), and HdrHistogram's pure-Python ``record_value`` costs about
1.2 us. :meth:`Meter.echo_ok` instead truncates the value to the histogram's
own resolution (3 significant digits: exact below 2048 us, then 11
significant bits) and counts it in a dict; the histogram is built from those
counts when a snapshot is taken. Same buckets, same percentiles, a tenth of
the cost, and the dict never holds more keys than the histogram has buckets.
"""

from __future__ import annotations

import os
import socket
import time
from collections import Counter
from dataclasses import dataclass, field
from time import perf_counter
from typing import Any

from hdrh.histogram import HdrHistogram

from loadgen.hdr import bucket_us, histogram_of, latency_fields, new_histogram
from loadgen.phases import Phases, merge_phases

HOST = socket.gethostname()
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


def rss_bytes() -> int | None:
    """This process's resident set size in bytes; None where /proc has no
    statm (not Linux)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except (OSError, IndexError, ValueError):
        return None


def cpu_seconds() -> float:
    """User+sys CPU time of this process so far (all its threads)."""
    t = os.times()
    return t.user + t.system


class Meter:
    """What one process measured. Only greenlets of this process touch it, and
    gevent switches only at blocking calls, so plain counters need no locks."""

    def __init__(self) -> None:
        self.connected = 0
        self.serving = 0  # open connections that had at least one echo
        self.users = 0  # a group's meter: the group's running users
        self.awaiting = 0  # users started, not yet connected once (loadgen/collect.py)
        self.phases = Phases()
        self.groups: dict[str, Meter] = {}
        self.reset_step()

    def group(self, name: str) -> Meter:
        """The child meter of user group ``name`` (created on first use)."""
        child = self.groups.get(name)
        if child is None:
            child = self.groups[name] = Meter()
        return child

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
        self.phases.reset_step()
        for child in getattr(self, "groups", {}).values():
            child.reset_step()
        self.start_window()

    def start_window(self, hold: bool = False) -> None:
        """``hold``: the master's hold mark, before which echoes were sent in the ramp."""
        self._latencies: dict[int, int] = {}  # us (truncated to HDR resolution) -> count
        self._lateness: dict[int, int] = {}  # the event loop's, likewise
        self._window_start = time.monotonic()
        self._window_start_pc = perf_counter() if hold else 0.0  # the clients' send clock
        self._cpu_start = cpu_seconds()
        self.phases.start_window()
        for child in self.groups.values():
            child.start_window(hold)

    @property
    def histogram(self) -> HdrHistogram:
        """The window's latencies (microseconds) as an HDR histogram."""
        return histogram_of(self._latencies)

    def loop_late(self, late_s: float) -> None:
        """One lateness sample of the event loop (:class:`loadgen.lag.LagProbe`)."""
        us = bucket_us(late_s)  # on time (or a hair early) counts as 1 us
        self._lateness[us] = self._lateness.get(us, 0) + 1

    # -- called by the client, once per event ---------------------------------
    def connect_started(self) -> None:
        self.connect_attempts += 1
        self.phases.connect_started()

    def await_connect(self, delta: int) -> None:
        self.awaiting += delta

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

    def echo_ok(self, latency_s: float, sent: float | None = None) -> None:
        if sent is not None and sent < self._window_start_pc:
            return  # sent (perf_counter) before the hold: the ramp's (module docstring)
        us = bucket_us(latency_s)
        lat = self._latencies
        lat[us] = lat.get(us, 0) + 1

    def failed(self, kind: str, sent: float | None = None) -> None:
        self.failures[kind] += 1  # an echo sent at ``sent`` (perf_counter), or a lost hold
        if sent is None or sent >= self._window_start_pc:
            self.phases.hold_failed(kind)

    def mismatched(self, sent: bytes, received: bytes) -> None:
        """Keep the step's first wrong reply: where it differs and 16 bytes of each side."""
        if self.mismatch is None:
            at = next((i for i, (a, b) in enumerate(zip(sent, received, strict=False))
                       if a != b), min(len(sent), len(received)))
            self.mismatch = {"offset": at, "sent": repr(bytes(sent[at:at + 16])),
                             "received": repr(bytes(received[at:at + 16]))}

    # -- step boundaries --------------------------------------------------------
    def snapshot(self, users: int, window_s: float | None = None) -> Snapshot:
        """The step so far; then start counting the next step. The groups' windows
        are this meter's (``window_s``), so their rates add up to its rate."""
        if window_s is None:  # before the histogram is built
            window_s = time.monotonic() - self._window_start
        cpu_s = cpu_seconds() - self._cpu_start
        lag = histogram_of(self._lateness)
        samples = lag.get_total_count()

        def lag_ms(value_us: float) -> float | None:
            return round(value_us / 1000.0, 3) if samples else None

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
            cpu=round(cpu_s / window_s, 3) if window_s > 0 else None,
            lag_p99_ms=lag_ms(lag.get_value_at_percentile(99)),
            lag_max_ms=lag_ms(lag.get_max_value()),
            lag_samples=samples,
            rss_bytes=rss_bytes(),
            host=HOST,
            phases=self.phases.message(),
            groups={name: child.snapshot(child.users, window_s)
                    for name, child in self.groups.items()},
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
    cpu: float | None = None  # CPU over the window, fraction of one core
    lag_p99_ms: float | None = None  # the event loop's lateness over the window
    lag_max_ms: float | None = None
    lag_samples: int = 0
    rss_bytes: int | None = None  # resident memory at the snapshot
    host: str = ""  # socket.gethostname() of the process
    id: str = ""  # its Locust node id (set by the master's collector)
    phases: dict[str, Any] = field(default_factory=dict)  # Phases.message()
    groups: dict[str, Snapshot] = field(default_factory=dict)  # each user group's own

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
            "cpu": self.cpu,
            "lag_p99_ms": self.lag_p99_ms,
            "lag_max_ms": self.lag_max_ms,
            "lag_samples": self.lag_samples,
            "rss_bytes": self.rss_bytes,
            "host": self.host,
            "phases": self.phases,
            "groups": {name: g.to_message() for name, g in self.groups.items()},
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
            cpu=_float_or_none(data.get("cpu")),
            lag_p99_ms=_float_or_none(data.get("lag_p99_ms")),
            lag_max_ms=_float_or_none(data.get("lag_max_ms")),
            lag_samples=int(data.get("lag_samples") or 0),
            rss_bytes=_int_or_none(data.get("rss_bytes")),
            host=str(data.get("host") or ""),
            phases=dict(data.get("phases") or {}),
            groups={name: cls.from_message(g) for name, g in (data.get("groups") or {}).items()},
        )

    def share(self) -> dict[str, Any]:
        """This process's line in the step record's ``worker_shares``."""
        return {"id": self.id, "host": self.host, "cpu": self.cpu,
                "lag_p99_ms": self.lag_p99_ms, "lag_max_ms": self.lag_max_ms,
                "users": self.users, "connected": self.connected, "rss_bytes": self.rss_bytes}


def _float_or_none(value: Any) -> float | None:
    return None if value is None else float(value)


def _int_or_none(value: Any) -> int | None:
    return None if value is None else int(value)


def _of_known(f: Any, values: list[Any]) -> Any:
    """``f`` (sum, max) of the values that are not None; None if none is."""
    known = [v for v in values if v is not None]
    return f(known) if known else None


def merge(snapshots: list[Snapshot], *, expected: int = 0,
          lost: list[dict[str, str]] | None = None,
          master_rss: int | None = None) -> dict[str, Any]:
    """Sum the workers' shares; percentiles come from the summed histogram.

    ``rps`` is echo successes per second over the hold: the sum of each
    process's echoes over its own window. The generator accounting takes the
    worst worker (``loadgen_cpu_max``, ``loadgen_lag_p99_ms``: null when none
    answered); ``expected`` and ``lost`` are the collector's roster (at least
    as many expected as answered). ``loadgen_rss_bytes`` sums the answering
    processes' resident memory and ``master_rss`` (a distributed master's own;
    None standalone, where the one process is its own only share).
    """
    total = new_histogram()
    connect_failures: Counter[str] = Counter()
    failures: Counter[str] = Counter()
    for s in snapshots:
        total.add(s.histogram)
        connect_failures.update(s.connect_failures)
        failures.update(s.failures)
    count = total.get_total_count()
    return {
        "users": sum(s.users for s in snapshots),
        "connected": sum(s.connected for s in snapshots),
        "connect_attempts": sum(s.connect_attempts for s in snapshots),
        "connect_failures": dict(sorted(connect_failures.items())),
        "echo_count": count,
        "rps": round(sum(s.histogram.get_total_count() / s.window_s
                         for s in snapshots if s.window_s > 0), 3),
        **latency_fields("", total),
        "failures": dict(sorted(failures.items())),
        "workers": len(snapshots),
        "loadgen_cpu_max": _of_known(max, [s.cpu for s in snapshots]),
        "loadgen_lag_p99_ms": _of_known(max, [s.lag_p99_ms for s in snapshots]),
        "loadgen_rss_bytes": _of_known(sum, [s.rss_bytes for s in snapshots] + [master_rss]),
        "workers_expected": max(expected, len(snapshots)),
        "workers_alive": len(snapshots),
        "workers_lost": list(lost or []),
        "worker_shares": [s.share() for s in snapshots],
        "mismatch_example": next((s.mismatch for s in snapshots if s.mismatch), None),
        # Each worker's own peak, summed: exact for one worker, an upper bound
        # for several (their peaks need not coincide).
        "peak_connected": sum(s.peak_connected for s in snapshots),
        "peak_served": sum(s.peak_served for s in snapshots),
        **merge_phases(snapshots),
        **merge_groups(snapshots),
    }


# What a group's record keeps of a merge: the load it saw, not the generator's accounting.
GROUP_DROPS = ("workers", "loadgen_cpu_max", "loadgen_lag_p99_ms", "loadgen_rss_bytes",
               "workers_expected", "workers_alive", "workers_lost", "worker_shares")


def merge_groups(snapshots: list[Snapshot]) -> dict[str, Any]:
    """``{"groups": {name: record}}`` when the load has user groups, else ``{}``.

    Each group's shares are merged like the totals (HDR histograms added,
    counters summed, rps over each process's own window); a worker that had
    none of a group's users sent no share of it."""
    names = sorted({name for s in snapshots for name in s.groups})
    if not names:
        return {}
    out = {}
    for name in names:
        record = merge([s.groups[name] for s in snapshots if name in s.groups])
        out[name] = {k: v for k, v in record.items() if k not in GROUP_DROPS}
    return {"groups": out}
