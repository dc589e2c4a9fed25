"""What every model shares: the ``Server`` base, the stats ticker and ``run()``.

A model is a ``Server`` subclass with one method that matters, ``serve()``:
accept connections on ``self.listener`` and echo every byte back. What it
needs is here and next to it, once:

* ``servers/listener.py`` — the listening socket and ``Acceptor``, the
  ``accept()`` that treats running out of descriptors as data;
* ``servers/events.py`` — ``Stats`` and the READY line and JSON events;
* ``servers/gate.py`` — SIGTERM/SIGINT as ``Shutdown``, raised only inside
  ``blocking(...)`` waits, and helper threads that leave signals alone;
* ``servers/process.py`` — memory and CPU from ``/proc``, ``--nofile``;
* ``servers/blocking_echo.py`` and ``servers/eventloop.py`` — the two
  families' echo loops.

``run()`` prints READY, starts the stats ticker, turns SIGTERM/SIGINT into
``Shutdown`` and prints the final event.

stdout carries the READY line and then JSON lines only; logs go to stderr.
"""

from __future__ import annotations

import errno
import os
import resource
import signal
import socket
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Any

from contract.limits import CRASH
from servers.events import Emitter, Serving, Stats
from servers.gate import Shutdown, blocking, on_signal, start_thread
from servers.listener import Acceptor, make_listener
from servers.process import rss_of, set_nofile

RECV_SIZE = 65536  # the one buffer of a single-threaded loop
# Event-driven models stop reading a connection whose unsent echo exceeds this
# (the client is not reading) and resume once it drained: memory stays bounded.
HIGH_WATER = 1 << 20

# Errors that mean "the peer is gone": an ordinary close.
CLOSE_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT, errno.ENOTCONN, errno.EHOSTUNREACH}


class Crash(Exception):
    """The model ends the process on purpose (``--on-fd-limit crash``): exit 1."""


def log(msg: str) -> None:
    print(f"servers: {msg}", file=sys.stderr, flush=True)


def spin(us: int) -> None:
    """``--work-us``: burn ``us`` microseconds of CPU per message (simulated work)."""
    end = time.perf_counter() + us / 1e6
    while time.perf_counter() < end:
        pass


class Server:
    """Base of every model. Subclasses implement ``serve()``."""

    model = "?"
    blocking_listener = True  # event-driven models set False
    stats_thread = True  # the stats ticker runs in a thread unless the model ticks itself
    serving: Serving | None = None  # set by the models whose threads hold a connection each

    def __init__(self, listener: socket.socket, stats: Stats, opts):
        self.listener = listener
        self.stats = stats
        self.opts = opts
        self.work_us = opts.work_us
        self.block_us = opts.block_us
        self.busy = bool(self.work_us or self.block_us)  # ``work()`` has something to do
        self.nodelay = opts.nodelay
        if not self.blocking_listener:  # one thread serves everyone: its waits are news
            stats.blocked_s = 0.0
        listener.setblocking(self.blocking_listener)
        self.acceptor = Acceptor(listener, stats, self.nodelay)

    def prepare(self) -> None:
        """Runs before READY and before any thread starts (signal masks, rings)."""

    def serve(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Runs after ``serve()`` ended, before the final event (reap children)."""

    def work(self) -> None:
        """The handler's own time per message, before the echo (when ``busy``).

        ``--work-us``: CPU burnt in a loop (a computation). ``--block-us``: a
        wait that uses no CPU, ``time.sleep`` (a database call, a disk read): the
        thread sleeps in ``clock_nanosleep`` and the scheduler runs others. In a
        thread or process per connection (or a pool) that blocks one client's
        thread only; in an event loop the one thread that serves every
        connection sleeps, so every ready connection waits behind it: N clients
        whose messages arrive together are answered after 1, 2 .. N waits. The
        event-driven models count those seconds in ``stats.blocked_s``.
        """
        if self.work_us:
            spin(self.work_us)
        if self.block_us:
            start = time.perf_counter()
            time.sleep(self.block_us / 1e6)
            stats = self.stats
            if stats.blocked_s is not None:
                stats.blocked_s += time.perf_counter() - start

    def accept_forever(self, handle: Callable[[socket.socket], None]) -> None:
        """The blocking models' loop: ``handle(conn)`` for every admitted connection."""
        acceptor = self.acceptor
        while True:
            conn = blocking(acceptor.accept)
            if conn is None:
                left = acceptor.backing_off()
                if left:
                    blocking(time.sleep, left)
            elif conn is not Acceptor.REFUSED:
                handle(conn)

    def buffered(self) -> tuple[int, int] | None:
        """(bytes, connections): echo the server holds because ``send()`` did
        not take it, summed over connections, and how many connections hold
        some. None where the model has no such buffer of its own.

        A client that reads slowly (a small ``SO_RCVBUF``, long pauses between
        reads) closes its TCP window; the server's socket send buffer fills and
        ``send()`` comes back short, then with EAGAIN. A blocking server's
        thread then waits inside ``sendall`` (the bytes stay in its 16 KiB
        buffer, one thread per slow client); an event loop cannot wait, so it
        keeps the rest in user space until EPOLLOUT and stops reading that
        connection above ``HIGH_WATER``: memory per slow connection, which
        these fields show. Read by the stats ticker (a thread in most models)
        while the loop runs, so an override copies before it iterates."""
        return None

    def usage(self) -> tuple[float, float, int]:
        """(cpu_user_s, cpu_sys_s, rss_bytes) for the whole server."""
        ru = resource.getrusage(resource.RUSAGE_SELF)
        return ru.ru_utime, ru.ru_stime, rss_of()

    def snapshot(self) -> dict[str, Any]:
        s = self.stats
        user, sys_, rss = self.usage()
        return {
            "model": s.model,
            "pid": os.getpid(),
            "connections": s.connections,
            "peak_connections": s.peak_connections,
            "accepted": s.accepted,
            "closed": s.closed,
            "refused": dict(s.refused),
            "bytes_in": s.bytes_in,
            "bytes_out": s.bytes_out,
            "cpu_user_s": round(user, 6),
            "cpu_sys_s": round(sys_, 6),
            "rss_bytes": rss,
            "max_fd": s.max_fd,
            **({} if s.blocked_s is None else {"blocked_s": round(s.blocked_s, 6)}),
            **self.serving_fields(),
        }

    def serving_fields(self) -> dict[str, Any]:
        """The optional stats of ``buffered()`` and ``serving``."""
        out: dict[str, Any] = {}
        held = self.buffered()
        if held is not None:
            out["buffered_bytes"], out["buffered_conns"] = held
        if self.serving is not None:
            out.update(self.serving.fields())
        return out


class Ticker:
    """Prints a stats event every ``interval`` seconds (thread or called from a loop).

    Its CPU is the lab's instrument, not the model's: building and printing an
    event reads ``getrusage`` and ``/proc``, walks the connections for their
    buffered echo, and for the forking model reads every child's PSS (0.3 ms a
    child), then formats and writes JSON. ``stats_cpu_s`` is that CPU so far
    (``time.thread_time``: one thread's user and system time): all of the
    ticker thread's, which exists only to report (the wake-ups of its sleeps
    included), or, where the model's loop ticks itself (io_uring), its time
    around each event. Measured on idle servers holding 300 connections,
    0.5 s ticks: 0.8 ms a second for epoll and poll (all of their CPU while
    idle; at 125 messages a second, ~10 % of epoll's), 64 ms a second for
    forking. The lab takes it out of the server's CPU per message
    (lab/run/monitors.py ``cpu_over``)."""

    def __init__(self, server: Server, interval: float):
        self.server = server
        self.interval = interval
        self.cpu_s = 0.0
        self._own_thread = False
        self.next = time.monotonic() + interval
        start = time.monotonic()
        self._last: dict[str, tuple[float, float]] = {"passes": (start, 0), "blocked": (start, 0)}
        self._stop = threading.Event()

    def _per_s(self, key: str, value: float) -> float:
        """A cumulative counter's growth per second since the previous event."""
        now = time.monotonic()
        then, before = self._last[key]
        self._last[key] = (now, value)
        return (value - before) / max(now - then, 1e-9)

    def fields(self) -> dict[str, Any]:
        fields = self.server.snapshot()
        stats = self.server.stats
        if stats.loop_passes is not None:
            fields["loop_passes_per_s"] = round(self._per_s("passes", stats.loop_passes), 1)
        if stats.blocked_s is not None:
            # The share of the last interval the one thread slept in handler
            # waits: 1.0 means the loop served no one at all.
            fields["blocked_per_s"] = round(self._per_s("blocked", stats.blocked_s), 4)
        fields["stats_cpu_s"] = round(self.cpu_s, 6)
        return fields

    def tick(self) -> float:
        """Emit if due; return seconds until the next one (for a loop's timeout)."""
        now = time.monotonic()
        if now >= self.next:
            began = time.thread_time()
            self.server.stats.emitter.event("stats", self.fields())
            spent = time.thread_time()
            self.cpu_s = spent if self._own_thread else self.cpu_s + spent - began
            self.next = max(self.next + self.interval, now + self.interval / 2)
        return max(self.next - time.monotonic(), 0.0)

    def _run(self) -> None:
        self._own_thread = True
        while not self._stop.wait(max(self.next - time.monotonic(), 0.0)):
            self.tick()

    def start(self) -> None:
        start_thread(self._run, name="stats")

    def stop(self) -> None:
        self._stop.set()


def run(model: str, server_cls: type[Server], opts) -> int:
    """Serve until SIGTERM/SIGINT; return the exit code (0, or 1 after a crash)."""
    emitter = Emitter()
    nofile = set_nofile(opts.nofile)  # ValueError -> caller reports, exit 2
    listener = make_listener(opts.host, opts.port, opts.backlog, opts.reuseport)
    stats = Stats(model, emitter)
    server = server_cls(listener, stats, opts)
    server.prepare()
    ticker = Ticker(server, opts.stats_interval)
    server.ticker = ticker
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, on_signal)
    host, port = listener.getsockname()[:2]
    emitter.line(f"READY {host}:{port} model={model} pid={os.getpid()} nofile={nofile}")
    if server.stats_thread:
        ticker.start()
    code = 0
    try:
        try:
            server.serve()
        except Shutdown:
            pass
        except Crash as exc:
            log(f"{model}: crashed: {exc}")
            code = 1
        except Exception:
            traceback.print_exc()
            stats.refuse(CRASH)
            code = 1
        finally:
            ticker.stop()
            # A second signal during cleanup must not skip the final event.
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_IGN)
        server.close()
    except Shutdown:
        pass
    emitter.event("final", ticker.fields(), last=True)
    return code
