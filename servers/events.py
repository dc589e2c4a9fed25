"""What a server says on stdout: the READY line, then one JSON event per line
(``stats`` every interval, ``limit`` the first time each kind is hit,
``final`` last), each flushed at once. Logs go to stderr.

* ``Stats`` — the counters of the stats event. Event-driven models update the
  plain attributes from their one thread; thread models hold ``stats.lock``.
  ``accepted`` counts admitted connections; a connection accepted only to be
  closed at a limit is counted under ``refused[kind]`` instead.
* ``Stats.refuse(kind, fd)`` — counts a limit hit and prints the limit event
  the first time each kind is seen.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from typing import Any


class Emitter:
    """Writes the READY line and the JSON events to stdout, one line each, flushed."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout
        self.lock = threading.Lock()
        self.closed = False

    def line(self, text: str) -> None:
        with self.lock:
            if not self.closed:
                self.stream.write(text + "\n")
                self.stream.flush()

    def event(self, name: str, fields: dict[str, Any], last: bool = False) -> None:
        record = {"event": name, "time": time.time(), **fields}
        with self.lock:
            if self.closed:
                return
            self.stream.write(json.dumps(record) + "\n")
            self.stream.flush()
            if last:
                self.closed = True


class Stats:
    """Counters for the stats/limit/final events."""

    def __init__(self, model: str, emitter: Emitter):
        self.model = model
        self.emitter = emitter
        self.lock = threading.Lock()  # thread models only
        self.accepted = 0
        self.closed = 0
        self.peak_connections = 0
        self.refused: dict[str, int] = {}
        self.bytes_in = 0
        self.bytes_out = 0
        self.max_fd = 0
        self.loop_passes: int | None = None  # set to 0 by models that count passes
        # Seconds the one thread slept in ``--block-us`` handlers (event-driven models).
        self.blocked_s: float | None = None

    @property
    def connections(self) -> int:
        return self.accepted - self.closed

    def opened(self, fd: int) -> None:
        """A connection was admitted (call under ``lock`` in thread models)."""
        self.accepted += 1
        live = self.accepted - self.closed
        if live > self.peak_connections:
            self.peak_connections = live
        if fd > self.max_fd:
            self.max_fd = fd

    def refuse(self, kind: str, fd: int = -1) -> None:
        """Count a limit hit; the first of each kind also prints a limit event."""
        with self.lock:
            first = kind not in self.refused
            self.refused[kind] = self.refused.get(kind, 0) + 1
            if fd > self.max_fd:
                self.max_fd = fd
        if first:
            self.emitter.event("limit", {"kind": kind, "fd": fd, "connections": self.connections})
