"""``--processes N``: one server as N processes, each with its own SO_REUSEPORT listener.

An event-driven server holds every connection as a descriptor of its one
process, so its ceiling is that process's RLIMIT_NOFILE (``nofile`` less the
few descriptors the server keeps for itself, ``contract/fds.py``). The limit
is per process: N processes hold about N x (nofile - overhead) connections.
This module is the parent of those N processes; it serves nothing itself.

What the kernel does with ``SO_REUSEPORT`` (Linux >= 3.9): every process binds
and listens on the same address with the option set (same user), and each
listening socket is its own socket with its own accept queue. For a new
connection the kernel picks one listener of the group by a hash of the
4-tuple (source and destination address and port), so the load spreads
statistically, not by free capacity: a process at its EMFILE wall keeps
receiving its share of new connections and refuses them (counted under
``EMFILE``) while the others still have room. ``processes: auto`` in a
scenario leaves a margin for that imbalance. A listener that closes drops the
connections queued on it (they are reset), and the group is rehashed. The
kernel lets only sockets of the same effective user join a group, but any
process of that user could: a port is shared with whoever asks.

Contrast with the classic pre-fork (one listener opened by the parent and
inherited across ``fork``): there all processes share one socket and one
accept queue, so no connection is lost when one of them closes it, but every
process waiting on it is woken for each connection (the thundering herd, on
epoll too unless ``EPOLLEXCLUSIVE``) and the busiest process is not the one
that accepts least. With SO_REUSEPORT each process has its own epoll and its
own queue and is woken only for the connections hashed to it.

What the parent does:

* It fixes the port first: it binds a socket with SO_REUSEPORT (and
  SO_REUSEADDR) to (host, port); with port 0 the kernel picks the port. It
  keeps that socket bound but never listening, because the kernel only
  looks up listening sockets of a group: a placeholder that listened would
  take its share of connections and drop them when it closed. It closes it
  once all children are READY (their listeners hold the port from then on).
* It starts N children, ``python -m servers MODEL ... --port P --processes 1
  --reuseport``: the same options (each sets its own ``--nofile``), each
  with its own stdout and stderr pipes and no other descriptor of the
  parent, each with ``PR_SET_PDEATHSIG`` = SIGTERM so that it dies with the
  parent. Their stderr is passed on to the parent's, held back until READY
  (a failed start is one line, the parent's).
* It prints one READY line (its own pid, the children's nofile,
  ``processes=N``) once every child printed its own, and then one merged
  event stream: every interval a ``stats`` event summing the children
  (connections, accepted, closed, bytes, CPU and RSS, plus the parent's CPU
  and RSS; ``refused``, ``blocked_s``, ``blocked_per_s``, ``buffered_bytes``,
  ``buffered_conns`` and ``stats_cpu_s`` summed (``OPTIONAL_SUMS``; the
  last plus all of the parent's CPU, which only relays stats); ``max_fd`` the highest;
  ``peak_connections`` the highest sum seen, since the sum of the children's
  peaks overstates it) with ``processes``, each child's own numbers; the
  first ``limit`` event of each kind, with the child's ``pid`` and the
  merged connection count; and on SIGTERM/SIGINT one merged ``final``
  after each child's own.
* A child that fails to start: the others are killed, one line on stderr,
  exit 2. A child that dies unexpectedly: a ``crash`` limit event (unless it
  printed its final, with its own limit, as select's ``--on-fd-limit crash``
  does), the others are stopped, the merged final, exit 1, as a crashed
  single process would. A child that stops cleanly (exit 0 after its final,
  e.g. a Ctrl-C that reached the whole process group) stops the server too,
  with exit 0.

The parent is one thread (a selector over the children's pipes and a
signal wake-up pipe): ``PR_SET_PDEATHSIG`` fires when the *thread* that
started a child exits, and starting children from other threads would also
make ``preexec_fn`` unsafe.
"""

from __future__ import annotations

import json
import os
import resource
import selectors
import signal
import subprocess
import sys
import time
from typing import Any

from contract.limits import CRASH
from servers import core, events, listener, process

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0  # after SIGTERM, how long a child has to print its final
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Stats fields the server's event has as the sum of its children's.
SUMMED = ("connections", "accepted", "closed", "bytes_in", "bytes_out", "cpu_user_s",
          "cpu_sys_s", "rss_bytes")
# Fields only some models report, summed when any child has them: the loops'
# blocked seconds (and share of time: above 1 over N loops) and the echo held
# for slow readers.
OPTIONAL_SUMS = ("blocked_s", "blocked_per_s", "buffered_bytes", "buffered_conns",
                 "stats_cpu_s")
# Each child's own numbers in the ``processes`` list.
DETAIL = ("connections", "accepted", "refused", "rss_bytes", "max_fd")


class StartFailed(Exception):
    """A child exited or printed no READY line: the server cannot start."""


class Child:
    """One server process and what it printed so far."""

    def __init__(self, index: int, proc: subprocess.Popen):
        self.index, self.proc, self.pid = index, proc, proc.pid
        self.ready: str | None = None  # its READY line
        self.stats: dict[str, Any] = {}  # its latest stats event, then its final
        self.final: dict[str, Any] | None = None
        self.partial = {proc.stdout.fileno(): b"", proc.stderr.fileno(): b""}
        self.held_stderr: list[bytes] = []  # before the server is READY
        self.exited = False  # its stdout reached EOF

    def value(self, key: str, default: Any = 0) -> Any:
        return self.stats.get(key, default)


class Supervisor:
    def __init__(self, model: str, opts, argv: list[str]):
        self.model, self.opts, self.argv = model, opts, argv
        self.emitter = events.Emitter()
        self.selector = selectors.DefaultSelector()
        self.children: list[Child] = []
        self.announced = False  # the READY line is out
        self.held_events: list[dict[str, Any]] = []  # limit events before READY
        self.limits_seen: set[str] = set()
        self.peak = 0
        self.signalled: int | None = None
        self.stopping_since: float | None = None
        self.code = 0

    # -- starting -----------------------------------------------------------
    def child_command(self, port: int) -> list[str]:
        # argparse keeps the last value of an option: these override the user's.
        return [sys.executable, "-m", "servers", *self.argv, "--port", str(port),
                "--processes", "1", "--reuseport"]

    def spawn(self, port: int) -> None:
        parent = os.getpid()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            p for p in (ROOT, os.environ.get("PYTHONPATH")) if p)}
        for i in range(self.opts.processes):
            proc = subprocess.Popen(
                self.child_command(port), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=env, close_fds=True,
                preexec_fn=lambda: process.die_with_parent(signal.SIGTERM, parent))
            child = Child(i, proc)
            self.children.append(child)
            for pipe in (proc.stdout, proc.stderr):
                self.selector.register(pipe, selectors.EVENT_READ, child)

    def wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not all(c.ready for c in self.children):
            left = deadline - time.monotonic()
            if left <= 0:
                late = next(c for c in self.children if not c.ready)
                raise StartFailed(f"{self.which(late)} printed no READY line within "
                                  f"{READY_TIMEOUT_S:.0f} s")
            self.pump(left)
            for c in self.children:
                if c.exited and not c.ready:
                    if not c.proc.stderr.closed:  # what it said as it exited
                        c.held_stderr.append(c.proc.stderr.read())
                    said = b"".join(c.held_stderr).decode(errors="replace").strip()
                    last = said.splitlines()[-1] if said else "no message"
                    last = last.removeprefix(f"python -m servers: {self.model}: ")
                    raise StartFailed(f"{self.which(c)} exited ({c.proc.returncode}) before "
                                      f"READY: {last}")

    def which(self, c: Child) -> str:
        return f"process {c.index + 1} of {len(self.children)} (pid {c.pid})"

    # -- reading the children -------------------------------------------------
    def pump(self, timeout: float | None) -> None:
        """Read whatever the children printed, waiting up to ``timeout``."""
        for key, _ in self.selector.select(timeout):
            if key.data is None:  # the signal wake-up pipe
                os.read(key.fd, 512)
                continue
            child: Child = key.data
            data = os.read(key.fd, 65536)
            if not data:
                self.selector.unregister(key.fileobj)
                key.fileobj.close()
                if key.fileobj is child.proc.stdout:
                    self.on_exit(child)
                continue
            *lines, child.partial[key.fd] = (child.partial[key.fd] + data).split(b"\n")
            for line in lines:
                if key.fileobj is child.proc.stdout:
                    self.on_line(child, line.decode(errors="replace"))
                elif self.announced:
                    sys.stderr.buffer.write(line + b"\n")
                    sys.stderr.flush()
                else:
                    child.held_stderr.append(line + b"\n")

    def on_line(self, child: Child, line: str) -> None:
        if child.ready is None:
            if line.startswith("READY "):
                child.ready = line
            return
        try:
            event = json.loads(line)
        except ValueError:
            return  # the contract says it cannot happen; never pass it on
        kind = event.get("event")
        if kind == "stats":
            child.stats = event
            self.peak = max(self.peak, self.total("connections"))
        elif kind == "final":
            child.stats = child.final = event
        elif kind == "limit":
            self.on_limit(child, event.get("kind"), event.get("fd", -1),
                          event.get("connections", child.value("connections")))

    def on_limit(self, child: Child, kind: str, fd: int, connections: int) -> None:
        """The first limit of each kind, for the whole server."""
        if kind in self.limits_seen:
            return
        self.limits_seen.add(kind)
        others = self.total("connections") - child.value("connections")
        fields = {"kind": kind, "fd": fd, "connections": others + connections,
                  "pid": child.pid}
        if self.announced:
            self.emitter.event("limit", fields)
        else:
            self.held_events.append(fields)

    def on_exit(self, child: Child) -> None:
        child.exited = True
        try:
            child.proc.wait(5)
        except subprocess.TimeoutExpired:
            child.proc.kill()
            child.proc.wait()
        if self.stopping_since is not None or not self.announced:
            return
        code = child.proc.returncode
        if child.final is None or code != 0:
            core.log(f"{self.model}: {self.which(child)} died (exit {code}); stopping the others")
            if child.final is None:
                self.on_limit(child, CRASH, -1, child.value("connections"))
            self.code = 1
        self.stop()

    # -- the merged stream ----------------------------------------------------
    def total(self, key: str) -> Any:
        return sum(c.value(key) for c in self.children)

    def merged(self) -> dict[str, Any]:
        """The server's stats: the children's, summed (see the module docstring)."""
        own = resource.getrusage(resource.RUSAGE_SELF)
        out: dict[str, Any] = {"model": self.model, "pid": os.getpid()}
        sums = {key: self.total(key) for key in SUMMED}
        sums["cpu_user_s"] = round(sums["cpu_user_s"] + own.ru_utime, 6)
        sums["cpu_sys_s"] = round(sums["cpu_sys_s"] + own.ru_stime, 6)
        sums["rss_bytes"] += process.rss_of()
        refused: dict[str, int] = {}
        for c in self.children:
            for kind, n in c.value("refused", {}).items():
                refused[kind] = refused.get(kind, 0) + n
        # Each a lower bound of the true peak: a sum seen, or one child's own peak.
        self.peak = max(self.peak, sums["connections"],
                        max(c.value("peak_connections") for c in self.children))
        out.update(connections=sums["connections"], peak_connections=self.peak,
                   accepted=sums["accepted"], closed=sums["closed"], refused=refused)
        out.update({key: sums[key] for key in SUMMED[3:]})
        out["max_fd"] = max(c.value("max_fd") for c in self.children)
        for key in OPTIONAL_SUMS:
            if any(key in c.stats for c in self.children):
                out[key] = round(self.total(key), 6)
        if "stats_cpu_s" in out:  # this process only relays its children's stats
            out["stats_cpu_s"] = round(out["stats_cpu_s"] + own.ru_utime + own.ru_stime, 6)
        out["processes"] = [{"pid": c.pid, **{k: c.value(k, {} if k == "refused" else 0)
                                              for k in DETAIL}} for c in self.children]
        return out

    # -- running and stopping -------------------------------------------------
    def on_signal(self, signum, frame) -> None:
        self.signalled = signum

    def stop(self) -> None:
        """SIGTERM to every child still running; the loop collects their finals."""
        if self.stopping_since is None:
            self.stopping_since = time.monotonic()
        for c in self.children:
            if not c.exited and c.proc.poll() is None:
                c.proc.send_signal(signal.SIGTERM)

    def serve(self) -> None:
        interval = self.opts.stats_interval
        next_tick = time.monotonic() + interval
        while not all(c.exited for c in self.children):
            if self.signalled is not None and self.stopping_since is None:
                self.stop()
            now = time.monotonic()
            if self.stopping_since is not None:
                if now - self.stopping_since > STOP_TIMEOUT_S:
                    self.kill_all()
                self.pump(0.2)
                continue
            if now >= next_tick:
                self.emitter.event("stats", self.merged())
                next_tick = max(next_tick + interval, now + interval / 2)
            self.pump(max(next_tick - time.monotonic(), 0.0))

    def kill_all(self) -> None:
        for c in self.children:
            if c.proc.poll() is None:
                c.proc.kill()

    def run(self) -> int:
        # Checked here (ValueError above the hard limit -> exit 2), applied by each
        # child: the parent's own descriptors (two pipes a child) are not bounded by it.
        process.set_nofile(self.opts.nofile, apply=False)
        placeholder = listener.bound_socket(self.opts.host, self.opts.port, reuseport=True)
        host, port = placeholder.getsockname()[:2]
        try:
            self.spawn(port)
            self.wait_ready()
        except (StartFailed, OSError) as exc:
            self.kill_all()
            for c in self.children:
                c.proc.wait()
            print(f"python -m servers: {self.model}: {exc}", file=sys.stderr, flush=True)
            return 2
        finally:
            placeholder.close()  # never listened: nothing was queued on it
        wake_r, wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.selector.register(wake_r, selectors.EVENT_READ, None)
        signal.set_wakeup_fd(wake_w, warn_on_full_buffer=False)
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self.on_signal)
        # The children's READY lines say which soft limit they set (all the same).
        nofile = dict(p.split("=", 1) for p in self.children[0].ready.split()[2:])["nofile"]
        self.emitter.line(f"READY {host}:{port} model={self.model} pid={os.getpid()} "
                          f"nofile={nofile} processes={len(self.children)}")
        self.announced = True
        for c in self.children:
            if c.held_stderr:
                sys.stderr.buffer.write(b"".join(c.held_stderr))
        sys.stderr.flush()
        for fields in self.held_events:
            self.emitter.event("limit", fields)
        self.serve()
        self.emitter.event("final", self.merged(), last=True)
        return self.code


def run(model: str, opts, argv: list[str]) -> int:
    """Serve as ``opts.processes`` processes; the exit code (0, 1 after a crash, 2 set-up)."""
    return Supervisor(model, opts, argv).run()
