"""The local backend's servers: a built-in model's process (its events read
from stdout) and a user's custom server, ready once the kernel shows *its*
listener on the port (lab/backends/listeners.py) and measured from its process
tree (lab/host/proctree.py). :mod:`lab.backends.local` starts them."""

from __future__ import annotations

import queue
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

from lab.backends.base import ServerHandle
from lab.backends.cgroup import MemoryCgroup
from lab.backends.children import LOOPBACK, spawn, tail_file, terminate
from lab.backends.listeners import foreign, listeners, listening_inodes
from lab.backends.server_output import parse_event, parse_ready
from lab.errors import BackendError
from lab.host.proctree import TreeSampler
from lab.scenario.types import ServerSpec

READY_TIMEOUT_S = 30.0


class LocalServer(ServerHandle):
    """A server subprocess; a reader thread turns its stdout into events."""

    def __init__(self, spec: ServerSpec, cmd: list[str], logs: Path, cwd: Path,
                 stem: str | None = None, cgroup: MemoryCgroup | None = None):
        self.spec = spec
        stem = stem or spec.name  # RunContext.stem: one set of logs per repeat
        self.stdout_log = logs / f"{stem}.server.stdout.log"
        self.stderr_log = logs / f"{stem}.server.stderr.log"
        self.cgroup = cgroup  # limits.memory: joined before exec (lab/backends/cgroup.py)
        self._oom: str | None = None  # the cgroup's evidence, kept once it is removed
        try:
            self.proc = spawn(cmd, self.stderr_log, cwd=cwd, stdout=subprocess.PIPE,
                              join=cgroup.preexec if cgroup else None)
        except BaseException:  # not started (no such command): its cgroup goes now
            if cgroup is not None:
                cgroup.remove()
            raise
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        self.ready_line: queue.Queue[str] = queue.Queue()
        self.final: dict[str, Any] | None = None
        self.reader = threading.Thread(target=self._read, name=f"{spec.name}-stdout", daemon=True)
        self.reader.start()

    def _read(self) -> None:
        with self.stdout_log.open("w") as log, self.proc.stdout:
            for raw in self.proc.stdout:
                line = raw.decode(errors="replace")
                log.write(line)
                log.flush()
                self._handle(line.strip())

    def _handle(self, line: str) -> None:
        """READY goes to ``wait_ready``; JSON lines are events; anything else is only logged."""
        if line.startswith("READY "):
            self.ready_line.put(line)
        elif (event := parse_event(line)) is not None:
            self.final = event if event.get("event") == "final" else self.final
            self.events.put(event)

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        """Parse the READY line into ``ready``/``target_*``; BackendError if it never comes."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.ready_line.get(timeout=0.1)
            except queue.Empty:
                if self.proc.poll() is not None:
                    self.reader.join(2)
                    raise BackendError(f"server {self.spec.name} exited ({self.proc.returncode}) "
                                       f"before READY:\n{self.log_tail(15)}") from None
                continue
            self.ready = parse_ready(line)
            self.target_host, self.target_port = LOOPBACK, int(self.ready["port"])
            return
        self.stop(2)
        raise BackendError(f"server {self.spec.name} printed no READY line within {timeout:.0f} s:"
                           f"\n{self.log_tail(15)}")

    def poll_events(self) -> list[dict[str, Any]]:
        # One consumer: qsize() is a lower bound, the rest comes next poll.
        return [self.events.get_nowait() for _ in range(self.events.qsize())]

    def exit_code(self) -> int | None:
        return self.proc.poll()

    def stop(self, timeout: float = 10.0) -> dict[str, Any] | None:
        terminate(self.proc, timeout)
        self.reader.join(5)
        if self.cgroup is not None:  # what the kernel said, then nothing left behind
            self._oom = self.oom_evidence()
            self.cgroup.remove()
            self.cgroup = None
        return self.final

    def oom_killed(self) -> bool:
        return self.oom_evidence() is not None

    def oom_evidence(self) -> str | None:
        return self._oom or (self.cgroup.evidence() if self.cgroup else None)

    def log_tail(self, lines: int = 40) -> str:
        return tail_file(self.stderr_log, lines) or tail_file(self.stdout_log, lines)

    def net_proc(self) -> Path | None:
        return Path("/proc/net")  # local processes share this machine's namespace


def port_in_use(port: int, host: str = LOOPBACK) -> str | None:
    """Why ``port`` cannot be a custom server's (a listener is there), else None."""
    taken = listeners(port)
    if not taken:
        return None
    return (f"port {port} on {host} is in use by {taken[0].describe()}; pick another port "
            "for the custom server (its 'port' and the port in its 'command')")


class CustomServer(LocalServer):
    """A user's echo server: no READY line and no events; ready once it accepts
    on its port *and* the listener there is the started process's own (or its
    children's), read from the kernel (lab/backends/listeners.py) — never a
    stranger that happened to hold the port. Its stats events come from the
    kernel: a ``TreeSampler`` (lab/host/proctree.py) reads its whole process
    tree every 0.5 s, from READY until the server exits."""

    def wait_ready(self, timeout: float = READY_TIMEOUT_S) -> None:
        deadline = time.monotonic() + timeout
        port = int(self.spec.port)
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise BackendError(f"custom server {self.spec.name} exited "
                                   f"({self.proc.returncode}):\n{self.log_tail(15)}")
            if not listening_inodes(port):
                time.sleep(0.1)
                continue
            strangers = foreign(port, self.proc.pid)
            if strangers:
                self.stop(2)
                raise BackendError(f"custom server {self.spec.name}: port {port} on "
                                   f"{LOOPBACK} is served by {strangers[0].describe()}, not "
                                   f"by the server the lab started (pid {self.proc.pid}); no "
                                   "load was sent. Pick another port")
            self.target_host, self.target_port = LOOPBACK, port
            self.ready = {"host": LOOPBACK, "port": self.spec.port, "model": None,
                          "pid": self.proc.pid, "nofile": None}
            TreeSampler(self.proc.pid, port, self.events.put, net=self.net_proc()).start()
            return
        self.stop(2)
        raise BackendError(f"custom server {self.spec.name} did not accept on "
                           f"{LOOPBACK}:{self.spec.port} within {timeout:.0f} s:\n"
                           f"{self.log_tail(15)}")
