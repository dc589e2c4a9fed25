"""What the run loop watches while a step runs: one server's event stream
(stats in time order, limit events, the final event), and the host's TCP
socket memory over time, so each row takes the values in force at its end.
"""

from __future__ import annotations

import bisect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.backends.base import ServerHandle
from lab.errors import ResultsError
from lab.results.writer import kernel_sock_bytes, model_cpu_s
from lab.run.hostcpu import over_window


def append_jsonl(path: Path, records: list[dict[str, Any]]) -> None:
    """Append raw records to a log of the run; a failed write ends the run like
    a failed row would (the run directory cannot be trusted to take more)."""
    if records:
        try:
            with path.open("a") as f:
                for record in records:
                    f.write(json.dumps(record) + "\n")
        except OSError as exc:
            raise ResultsError(f"cannot write {path}: {exc.strerror or exc}; the step rows "
                               "recorded so far are in steps.csv and run.json") from None


# Who measured a server's CPU, memory and connections: the ``source`` of its
# stats events, recorded in run.json as ``models.<name>.measured_by``. A
# built-in model's events carry no source: the server counts for itself.
MEASURED_BY_SERVER = "server"  # its own stats events (servers/events.py)
MEASURED_BY = {
    MEASURED_BY_SERVER: "the server's own stats events",
    "proc": "the lab, from the server's whole process tree in /proc (lab/host/proctree.py)",
    "docker": "the lab, from the container's cgroup through the Docker stats API",
}


class ServerMonitor:
    """Collects one server's events: stats in time order, limits, the final event."""

    def __init__(self, handle: ServerHandle, events_path: Path):
        self.handle = handle
        self.events_path = events_path
        try:
            events_path.touch()
        except OSError as exc:
            raise ResultsError(f"cannot write {events_path}: {exc.strerror or exc}") from None
        self.stats: list[dict[str, Any]] = []
        self.stat_times: list[float] = []
        self.limits: list[dict[str, Any]] = []
        self.final: dict[str, Any] | None = None
        self.latest_time = float("-inf")
        self.sources: list[str] = []  # the stats events' sources, in order of first sight

    def drain(self) -> list[dict[str, Any]]:
        events = self.handle.poll_events()
        append_jsonl(self.events_path, events)
        for event in events:
            self.add(event)
        return events

    def add(self, event: dict[str, Any]) -> None:
        t = float(event.get("time") or 0.0)
        self.latest_time = max(self.latest_time, t)
        kind = event.get("event")
        if kind == "stats":
            source = str(event.get("source") or MEASURED_BY_SERVER)
            if source not in self.sources:
                self.sources.append(source)
            index = bisect.bisect_right(self.stat_times, t)
            self.stat_times.insert(index, t)
            self.stats.insert(index, event)
        elif kind == "limit":
            self.limits.append(event)
        elif kind == "final":
            self.final = event

    def measured_by(self) -> str | None:
        """What measured the server's figures (a key of ``MEASURED_BY``);
        None when no stats event came (nothing measured them)."""
        return "+".join(self.sources) or None

    def stats_at(self, t: float) -> dict[str, Any] | None:
        """The last stats event at or before ``t``."""
        index = bisect.bisect_right(self.stat_times, t)
        return self.stats[index - 1] if index else None

    def cpu_over(self, start: float, end: float) -> float | None:
        """The server's CPU seconds (user + system) over ``[start, end]``, from
        its stats inside the window (``hostcpu.over_window``), less what its
        stats reporting took (``stats_cpu_s``, servers/core.py ``Ticker``: the
        lab's instrument, not the model; a custom server has none); None when
        they do not cover it or carry no CPU."""
        points = [(float(e["time"]), cpu) for e in self.stats
                  if (cpu := model_cpu_s(e)) is not None]
        return over_window([t for t, _ in points], [c for _, c in points], start, end)

    def first_limit(self, until: float = float("inf")) -> str | None:
        seen = [e for e in self.limits if float(e.get("time") or 0.0) <= until]
        return min(seen, key=lambda e: float(e.get("time") or 0.0))["kind"] if seen else None


class SockSampler:
    """Host TCP socket memory over time, so a row can take the value at its t_end."""

    def __init__(self, enabled: bool, read: Callable[[], int | None] = kernel_sock_bytes):
        self.enabled, self.read = enabled, read
        self.times: list[float] = []
        self.values: list[int] = []

    def sample(self, now: float) -> None:
        value = self.read() if self.enabled else None
        if value is not None:
            self.times.append(now)
            self.values.append(value)

    def at(self, t: float) -> int | None:
        index = bisect.bisect_right(self.times, t)
        if index:
            return self.values[index - 1]
        return self.values[0] if self.values else None
