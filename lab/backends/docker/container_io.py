"""Getting data out of running containers, local or remote.

Bind mounts only work when the daemon shares this machine's filesystem, so
nothing here uses them:

- ``LogFollower`` — a thread on ``container.logs(stream=True, follow=True)``
  (the daemon's copy of the process's stdout/stderr), writing every line to a
  file in the run directory, catching the server's ``READY`` line and queueing
  its JSON events. The stream ends when the container stops.
- ``fetch_file`` — ``GET /containers/<id>/archive`` (``docker cp``): a tar of
  one file, readable from running *and* stopped containers.
- ``StatsSampler`` — ``GET /containers/<id>/stats?stream=0&one-shot=1``: one
  cgroup sample (CPU ns, memory, PIDs, network bytes) per container per tick,
  appended as JSON lines.
- ``CgroupEvents`` — the same call for a *custom* server's container, turned
  into the ``stats`` events a built-in model prints (``"source": "docker"``):
  the container's cgroup is the server's whole process tree, so its CPU
  (user and system, every process that ever ran in it, exited ones included),
  its memory and its task count are the tree's, read by the kernel.
"""

from __future__ import annotations

import io
import json
import queue
import tarfile
import threading
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab.backends.server_output import parse_event, parse_ready
from lab.host.proctree import THREADS


class LogFollower(threading.Thread):
    """Follow one container's output into ``path``; READY and JSON events out."""

    def __init__(self, container, path: Path, tail_lines: int = 200):
        super().__init__(name=f"logs-{container.name}", daemon=True)
        self.container = container
        self.path = path
        self.ready: dict[str, Any] | None = None
        self.ready_event = threading.Event()
        self.events: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.final: dict[str, Any] | None = None
        self._tail: deque[str] = deque(maxlen=tail_lines)
        self._lock = threading.Lock()

    def run(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pending = b""
        stream = None
        try:
            with self.path.open("ab") as sink:
                stream = self.container.logs(stream=True, follow=True, stdout=True, stderr=True)
                for chunk in stream:
                    sink.write(chunk)
                    sink.flush()
                    pending += chunk
                    *lines, pending = pending.split(b"\n")
                    for raw in lines:
                        self._line(raw.decode(errors="replace").rstrip("\r"))
                if pending:
                    self._line(pending.decode(errors="replace"))
        except Exception as exc:  # the container vanished mid-stream
            self._line(f"[iolab: log stream ended: {exc}]")
        finally:
            if stream is not None:  # its HTTP connection, not left for the GC to find
                try:
                    stream.close()
                except Exception:  # noqa: BLE001 - closing a dead stream
                    pass
            self.ready_event.set()  # wake waiters: READY came, or never will

    def _line(self, line: str) -> None:
        with self._lock:
            self._tail.append(line)
        if self.ready is None:
            ready = parse_ready(line)
            if ready is not None:
                self.ready = ready
                self.ready_event.set()
                return
        event = parse_event(line)
        if event is not None:
            if event.get("event") == "final":
                self.final = event
            self.events.put(event)

    def drain(self) -> list[dict[str, Any]]:
        out = []
        while True:
            try:
                out.append(self.events.get_nowait())
            except queue.Empty:
                return out

    def tail(self, lines: int = 40) -> str:
        with self._lock:
            return "\n".join(list(self._tail)[-lines:])


def fetch_file(container, path: str) -> bytes | None:
    """One file out of a container (``docker cp``); None if it does not exist."""
    import docker.errors

    try:
        stream, _ = container.get_archive(path)
    except docker.errors.NotFound:
        return None
    with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
        for member in tar.getmembers():
            if member.isfile():
                return tar.extractfile(member).read()
    return None


def compact_stats(role: str, raw: dict[str, Any]) -> dict[str, Any]:
    """The fields worth keeping from one Docker stats sample."""
    cpu = raw.get("cpu_stats", {}).get("cpu_usage", {})
    mem = raw.get("memory_stats", {})
    nets = raw.get("networks") or {}
    return {
        "time": time.time(),
        "role": role,
        "cpu_total_ns": cpu.get("total_usage"),
        "memory_bytes": mem.get("usage"),
        "memory_limit_bytes": mem.get("limit"),
        "pids": raw.get("pids_stats", {}).get("current"),
        "rx_bytes": sum(n.get("rx_bytes", 0) for n in nets.values()),
        "tx_bytes": sum(n.get("tx_bytes", 0) for n in nets.values()),
    }


class StatsSampler:
    """One thread per watched container: a stats sample every ``interval`` s,
    appended to one JSON-lines file. (A non-streaming stats call takes about
    a second on Docker 20.10, which waits for a second CPU reading, so one
    thread looping over every container would sample each one too rarely.)"""

    def __init__(self, path: Path, interval: float = 2.0):
        self.path = path
        self.interval = interval
        self.watched: dict[str, Any] = {}  # role -> container
        self.latest: dict[str, dict[str, Any]] = {}
        self._halt = threading.Event()
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._sink = None

    def watch(self, role: str, container) -> None:
        self.watched[role] = container

    def start(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._sink = self.path.open("a")
        for role, container in self.watched.items():
            thread = threading.Thread(target=self._sample, args=(role, container),
                                      name=f"stats-{role}", daemon=True)
            thread.start()
            self._threads.append(thread)

    def _sample(self, role: str, container) -> None:
        while not self._halt.is_set():
            try:
                raw = container.stats(stream=False, one_shot=True)
            except Exception:  # removed: nothing more to sample
                return
            if not raw.get("memory_stats"):  # a stopped container answers with zeros
                return
            sample = compact_stats(role, raw)
            with self._lock:
                self.latest[role] = sample
                if self._sink is not None and not self._sink.closed:
                    self._sink.write(json.dumps(sample) + "\n")
                    self._sink.flush()
            self._halt.wait(self.interval)

    def stop(self) -> None:
        self._halt.set()
        for thread in self._threads:
            thread.join(timeout=5)
        with self._lock:
            if self._sink is not None:
                self._sink.close()


def cgroup_stats(raw: dict[str, Any], connections: int | None) -> dict[str, Any]:
    """A stats event's fields from one Docker stats sample of a custom server.

    ``cpu_usage.usage_in_usermode``/``usage_in_kernelmode`` are the cgroup's
    cumulative CPU in ns (cgroup v1 ``cpuacct.stat``, v2 ``cpu.stat``), which
    keeps the CPU of processes that exited. Memory is ``usage`` less the
    inactive file cache, as ``docker stats`` shows it: the cgroup charges each
    page once, however many of its processes map it, so it is the tree's
    memory without RSS's double counting (it includes the page cache the
    server touched, which a process's RSS does not). ``pids_stats.current``
    counts tasks, threads included: the cgroup has no process count and no
    descriptor count, so those are None."""
    cpu = raw.get("cpu_stats", {}).get("cpu_usage", {})
    mem = raw.get("memory_stats", {})
    extra = mem.get("stats") or {}
    usage = mem.get("usage")
    inactive = extra.get("inactive_file", extra.get("total_inactive_file", 0)) or 0
    user, kernel = cpu.get("usage_in_usermode"), cpu.get("usage_in_kernelmode")
    return {
        "connections": connections,
        "rss_bytes": None if usage is None else max(usage - inactive, 0),
        "pss_bytes": None,
        "cpu_user_s": None if user is None else user / 1e9,
        "cpu_sys_s": None if kernel is None else kernel / 1e9,
        "processes": None,
        THREADS: raw.get("pids_stats", {}).get("current"),
        "fds": None,
    }


class CgroupEvents(threading.Thread):
    """A ``stats`` event (``"source": "docker"``) for a custom server's
    container every ``interval`` s (each stats call itself can take about a
    second on older daemons), handed to ``emit``; ``connections`` counts the
    ESTABLISHED sockets on its port in its namespace (None: cannot be read)."""

    def __init__(self, container, emit: Callable[[dict[str, Any]], None],
                 connections: Callable[[], int | None], interval: float = 0.5):
        super().__init__(name=f"cgroup-{container.name}", daemon=True)
        self.container, self.emit, self.connections = container, emit, connections
        self.interval = interval
        self.halt = threading.Event()

    def sample(self) -> dict[str, Any] | None:
        try:
            raw = self.container.stats(stream=False, one_shot=True)
        except Exception:  # noqa: BLE001 - removed, or its daemon went away
            return None
        if not raw.get("memory_stats"):  # a stopped container answers with zeros
            return None
        event = {"event": "stats", "time": time.time(), "source": "docker",
                 **cgroup_stats(raw, self.connections())}
        self.emit(event)
        return event

    def run(self) -> None:
        while not self.halt.is_set() and self.sample() is not None:
            self.halt.wait(self.interval)

    def stop(self) -> None:
        self.halt.set()
        if self.is_alive():
            self.join(5)
