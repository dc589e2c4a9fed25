"""What a server says on stdout: the READY line, then one JSON event per line
(``stats`` every interval, ``limit`` the first time each kind is hit,
``final`` last), each flushed at once. Logs go to stderr.

* ``Stats`` — the counters of the stats event. Event-driven models update the
  plain attributes from their one thread; thread models hold ``stats.lock``.
  ``accepted`` counts admitted connections; a connection accepted only to be
  closed at a limit is counted under ``refused[kind]`` instead.
* ``Stats.refuse(kind, fd)`` — counts a limit hit and prints the limit event
  the first time each kind is seen.
* ``Serving`` — who is being served and who waits, in the models whose
  threads each serve one connection until it closes (threadpool, blocking):
  a starved pool shows as every worker busy and connections waiting.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from collections import deque
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


class Serving:
    """The serving side of a model whose threads each hold one connection
    until it closes (a thread pool, the blocking server's one thread).

    Such a thread is taken for the whole session, not per message: a client
    that dribbles one byte every 500 ms (slowloris) or reads its reply
    slowly keeps its worker as long as a fast one would, so a few slow
    clients can hold every worker while new connections, accepted by the
    kernel, wait. The stats say so: ``workers``, ``busy`` (serving a
    connection now), ``waiting`` (accepted, queued for a worker now; the
    pool only: the blocking server's waiting connections are in the
    kernel's accept queue, where it cannot count them), ``wait_oldest_s``
    (how long the longest of those has waited) and ``session_oldest_s``
    (how long the longest session now served has held its worker).
    """

    def __init__(self, workers: int, queue: bool):
        self.workers = workers
        self.lock = threading.Lock()
        self.sessions: dict[int, float] = {}  # thread ident -> session start (monotonic)
        self.queue: deque[float] | None = deque() if queue else None  # FIFO enqueue times

    def queued(self) -> None:
        """A connection was handed to the pool's queue (call before the put)."""
        with self.lock:
            self.queue.append(time.monotonic())  # type: ignore[union-attr]

    def started(self) -> None:
        """This thread took a connection (the queue's oldest: it is FIFO)."""
        now = time.monotonic()
        with self.lock:
            if self.queue:
                self.queue.popleft()
            self.sessions[threading.get_ident()] = now

    def ended(self) -> None:
        with self.lock:
            self.sessions.pop(threading.get_ident(), None)

    def fields(self) -> dict[str, Any]:
        now = time.monotonic()
        with self.lock:
            oldest = min(self.sessions.values(), default=now)
            out: dict[str, Any] = {"workers": self.workers, "busy": len(self.sessions),
                                   "session_oldest_s": round(now - oldest, 3)}
            if self.queue is not None:
                out["waiting"] = len(self.queue)
                out["wait_oldest_s"] = round(now - self.queue[0], 3) if self.queue else 0.0
        return out
