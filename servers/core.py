"""What every model shares: listener, counters, limit accounting, events, signals.

A model is a ``Server`` subclass with one method that matters, ``serve()``:
accept connections on ``self.listener`` and echo every byte back. Everything
else is here, once:

* ``Stats`` — the counters of the stats event. Event-driven models update the
  plain attributes from their one thread; thread models hold ``stats.lock``.
  ``accepted`` counts admitted connections; a connection accepted only to be
  closed at a limit is counted under ``refused[kind]`` instead.
* ``Stats.refuse(kind, fd)`` — counts a limit hit and prints the limit event
  the first time each kind is seen.
* ``Acceptor`` — ``accept()`` that treats running out of descriptors as data,
  not as a crash or a spin (trio's ``ACCEPT_CAPACITY_ERRNOS``): on EMFILE or
  ENFILE it closes a reserved descriptor, accepts the pending connection,
  closes it (the client sees a reset/EOF instead of waiting in the backlog),
  counts it and reopens the reserve. If even that fails it asks the caller to
  back off for a while instead of retrying at once.
* ``run()`` — prints READY, starts the stats ticker, turns SIGTERM/SIGINT into
  ``Shutdown`` (raised in the main thread, only inside ``blocking(...)`` waits,
  see ``_Gate``) and prints the final event.

stdout carries the READY line and then JSON lines only; logs go to stderr.
"""

from __future__ import annotations

import ctypes
import errno
import json
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

from contract.limits import CRASH, EMFILE, ENFILE, ENOBUFS, ENOMEM

PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
RECV_SIZE = 65536  # the one buffer of a single-threaded loop
THREAD_RECV_SIZE = 16384  # one per connection in the thread/process models
# Event-driven models stop reading a connection whose unsent echo exceeds this
# (the client is not reading) and resume once it drained: memory stays bounded.
HIGH_WATER = 1 << 20

# errno -> limit kind: accept() errors that mean "out of a resource", named by
# their errno (each is a kind of the shared vocabulary, contract/limits.py).
ACCEPT_CAPACITY_ERRNOS = {
    errno.EMFILE: EMFILE, errno.ENFILE: ENFILE, errno.ENOBUFS: ENOBUFS, errno.ENOMEM: ENOMEM,
}
# A connection that died in the backlog: not our problem, accept the next one.
ACCEPT_SKIP_ERRNOS = {errno.ECONNABORTED, errno.EPROTO, errno.EPERM, errno.ENETDOWN}
# Errors that mean "the peer is gone": an ordinary close.
CLOSE_ERRNOS = {errno.ECONNRESET, errno.EPIPE, errno.ETIMEDOUT, errno.ENOTCONN, errno.EHOSTUNREACH}


class Shutdown(BaseException):
    """Raised in the main thread by SIGTERM/SIGINT: leave ``serve()`` now."""


class Crash(Exception):
    """The model ends the process on purpose (``--on-fd-limit crash``): exit 1."""


def log(msg: str) -> None:
    print(f"servers: {msg}", file=sys.stderr, flush=True)


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


def rss_of(pid: int | str = "self") -> int:
    """Resident set size of a process, in bytes (0 if it is gone).

    A server at its open-file limit cannot open statm (EMFILE), exactly at
    the step whose memory matters most; for itself it then reports its peak
    RSS (``getrusage`` needs no descriptor). A server's memory grows with its
    connections, so at the wall the peak is the current size to within what
    it freed since."""
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * PAGE_SIZE
    except OSError as exc:
        if pid == "self" and exc.errno in (errno.EMFILE, errno.ENFILE):
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # kB on Linux
        return 0
    except (IndexError, ValueError):
        return 0


def pss_of(pid: int | str = "self") -> int | None:
    """Proportional set size of a process, in bytes: every resident page divided
    by the number of processes that map it (``Pss:`` of ``/proc/PID/smaps_rollup``).

    ``None`` when it cannot be read: kernels before 4.14 have no ``smaps_rollup``,
    and it needs ptrace-read access to the process (a parent has it for its own
    children, a hardened ``/proc`` may not give it), or the process is gone.
    The kernel walks the page tables to answer: a read costs system time
    proportional to the process's mappings (tens of microseconds for an
    interpreter), charged to the reader.
    """
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024  # always in kB
    except (OSError, IndexError, ValueError):
        pass
    return None


def cpu_of(pid: int) -> tuple[float, float]:
    """(user, sys) seconds of a live process, from /proc (0, 0 if it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) / CLOCK_TICKS, int(fields[12]) / CLOCK_TICKS
    except (OSError, IndexError, ValueError):
        return 0.0, 0.0


def set_nofile(spec: str | None, apply: bool = True) -> int:
    """Apply ``--nofile max|N`` to the soft RLIMIT_NOFILE; return the soft limit.
    ValueError above the hard limit. ``apply=False`` only checks (the limit it
    would set is returned)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if spec is not None:
        want = hard if spec == "max" else int(spec)
        if hard != resource.RLIM_INFINITY and want > hard:
            raise ValueError(f"--nofile {want} exceeds the hard limit {hard}")
        if apply:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        soft = want
    return soft


def bound_socket(host: str, port: int, reuseport: bool = False) -> socket.socket:
    """A TCP socket bound to (host, port), not listening yet.

    ``reuseport``: SO_REUSEPORT before ``bind``, so that other sockets of the
    same user that set it too may bind the same address (``servers/prefork.py``).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuseport:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def make_listener(host: str, port: int, backlog: int, reuseport: bool = False) -> socket.socket:
    sock = bound_socket(host, port, reuseport)
    sock.listen(backlog)
    return sock


PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int, parent: int | None = None) -> None:
    """``prctl(PR_SET_PDEATHSIG)``: the kernel sends ``signum`` to this process
    when the thread that started it exits. ``parent``: the pid that started
    it; if that one died before the prctl (this process was reparented), exit
    now, since the signal will never come."""
    ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signum)
    if parent is not None and os.getppid() != parent:
        os._exit(1)


def spin(us: int) -> None:
    """``--work-us``: burn ``us`` microseconds of CPU per message (simulated work)."""
    end = time.perf_counter() + us / 1e6
    while time.perf_counter() < end:
        pass


class Acceptor:
    """``accept()`` with the reserved-descriptor trick; see the module docstring."""

    BACKOFF_S = 0.1
    REFUSED = object()  # a pending connection was taken off the backlog and closed

    def __init__(self, listener: socket.socket, stats: Stats):
        self.listener = listener
        self.stats = stats
        self.spare: int | None = None
        self.backoff_until = 0.0
        self._reserve()

    def _reserve(self) -> None:
        try:
            self.spare = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self.spare = None

    def accept(self):
        """A connected socket, ``None`` (nothing pending / back off) or ``REFUSED``."""
        try:
            return self.listener.accept()[0]
        except (BlockingIOError, InterruptedError, TimeoutError):
            return None
        except OSError as exc:
            if exc.errno in ACCEPT_SKIP_ERRNOS:
                return self.REFUSED
            kind = ACCEPT_CAPACITY_ERRNOS.get(exc.errno)
            if kind is None:
                raise
        if self.spare is not None and kind in (EMFILE, ENFILE):
            os.close(self.spare)
            self.spare = None
            try:
                conn = self.listener.accept()[0]
            except OSError:
                conn = None
            if conn is not None:
                fd = conn.fileno()
                conn.close()
                self.stats.refuse(kind, fd)
            self._reserve()
            if conn is not None:
                return self.REFUSED
        else:
            self.stats.refuse(kind)
        self.backoff_until = time.monotonic() + self.BACKOFF_S
        return None

    def backing_off(self) -> float:
        """Seconds left to wait before accepting again (0 when free to accept)."""
        left = self.backoff_until - time.monotonic()
        return left if left > 0 else 0.0


class Server:
    """Base of every model. Subclasses implement ``serve()``."""

    model = "?"
    blocking_listener = True  # event-driven models set False
    stats_thread = True  # the stats ticker runs in a thread unless the model ticks itself

    def __init__(self, listener: socket.socket, stats: Stats, opts):
        self.listener = listener
        self.stats = stats
        self.opts = opts
        self.work_us = opts.work_us
        listener.setblocking(self.blocking_listener)
        self.acceptor = Acceptor(listener, stats)

    def prepare(self) -> None:
        """Runs before READY and before any thread starts (signal masks, rings)."""

    def serve(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Runs after ``serve()`` ended, before the final event (reap children)."""

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
        }


# Signals that must reach the main thread: a process-directed signal can be
# delivered to any thread that does not block it, and then the main thread's
# blocking call is not interrupted (CPython runs handlers in the main thread).
MAIN_THREAD_SIGNALS = {signal.SIGTERM, signal.SIGINT, signal.SIGCHLD, signal.SIGIO}


def start_thread(target: Callable[..., Any], *args: Any, name: str | None = None) -> None:
    """Start a daemon helper thread that blocks ``MAIN_THREAD_SIGNALS``.

    RuntimeError when the thread cannot be started (the ``threads`` limit).
    """

    def body():
        signal.pthread_sigmask(signal.SIG_BLOCK, MAIN_THREAD_SIGNALS)
        target(*args)

    threading.Thread(target=body, name=name, daemon=True).start()


class Ticker:
    """Prints a stats event every ``interval`` seconds (thread or called from a loop)."""

    def __init__(self, server: Server, interval: float):
        self.server = server
        self.interval = interval
        self.next = time.monotonic() + interval
        self._last_passes = (time.monotonic(), 0)
        self._stop = threading.Event()

    def fields(self) -> dict[str, Any]:
        fields = self.server.snapshot()
        passes = self.server.stats.loop_passes
        if passes is not None:
            now = time.monotonic()
            then, before = self._last_passes
            fields["loop_passes_per_s"] = round((passes - before) / max(now - then, 1e-9), 1)
            self._last_passes = (now, passes)
        return fields

    def tick(self) -> float:
        """Emit if due; return seconds until the next one (for a loop's timeout)."""
        now = time.monotonic()
        if now >= self.next:
            self.server.stats.emitter.event("stats", self.fields())
            self.next = max(self.next + self.interval, now + self.interval / 2)
        return max(self.next - time.monotonic(), 0.0)

    def _run(self) -> None:
        while not self._stop.wait(max(self.next - time.monotonic(), 0.0)):
            self.tick()

    def start(self) -> None:
        start_thread(self._run, name="stats")

    def stop(self) -> None:
        self._stop.set()


class _Gate:
    """Where SIGTERM/SIGINT may raise ``Shutdown`` in the main thread.

    Raising from a signal handler at an arbitrary bytecode could land between
    a ``send`` and the counter update after it, and the final event would not
    match what the clients saw. So the handler raises only while the main
    thread is inside ``blocking(...)`` (a wait that the signal interrupts);
    anywhere else it records the signal and the next ``blocking`` call raises.
    """

    safe = False
    pending: int | None = None


GATE = _Gate()


def _on_signal(signum, frame):
    if GATE.safe:
        GATE.safe = False
        raise Shutdown(signum)
    GATE.pending = signum


def blocking(fn, *args):
    """Call ``fn(*args)`` (main thread) so that SIGTERM/SIGINT can end the wait."""
    GATE.safe = True
    try:
        if GATE.pending is not None:
            raise Shutdown(GATE.pending)
        return fn(*args)
    finally:
        GATE.safe = False


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
        signal.signal(signum, _on_signal)
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


def serve_blocking(
    conn: socket.socket,
    server: Server,
    on_close: Callable[[], None] | None = None,
    main_thread: bool = False,
    account: Callable[[int, int], None] | None = None,
):
    """Echo on a blocking socket until the peer closes (threads, pool, blocking).

    Half-close: ``recv`` returning b"" means the peer will send nothing more;
    everything already received has been echoed by ``sendall``, so closing now
    lets the client read the rest and then EOF. Resets are ordinary closes.
    Counters are updated under ``stats.lock`` (several threads share them).
    ``main_thread``: the calls block through ``blocking()`` (SIGTERM ends them).
    ``account(bytes_in, bytes_out)`` replaces the shared counters (forking).
    """
    stats, work_us = server.stats, server.work_us
    lock = stats.lock
    if account is None:

        def account(n_in, n_out):
            with lock:
                stats.bytes_in += n_in
                stats.bytes_out += n_out

    buf = bytearray(THREAD_RECV_SIZE)
    view = memoryview(buf)
    try:
        while True:
            n = blocking(conn.recv_into, buf) if main_thread else conn.recv_into(buf)
            if not n:
                break
            account(n, 0)
            if work_us:
                spin(work_us)
            if main_thread:
                blocking(conn.sendall, view[:n])
            else:
                conn.sendall(view[:n])
            account(0, n)
    except OSError as exc:
        if exc.errno not in CLOSE_ERRNOS:
            log(f"connection error: {exc}")
    except Shutdown:  # the final event reports it as open at the end, as in every model
        conn.close()
        raise
    conn.close()
    if on_close is not None:
        on_close()
    else:
        with lock:
            stats.closed += 1
