"""Run ``python -m servers MODEL ...`` as a subprocess for tests.

    with ServerProcess("epoll", "--nofile", "max") as srv:
        sock = socket.create_connection((srv.host, srv.port))
        ...
        stats = srv.wait_event(lambda e: e["event"] == "stats" and e["accepted"] >= 1)
        final = srv.terminate()          # SIGTERM, the final event

The constructor waits for READY (with a deadline) and raises ``ServerFailed``
with the server's stderr if it does not come. A reader thread parses every
stdout line after READY as JSON; ``events()`` returns them all so far.
``close()`` (also ``__exit__``) always kills the process; use it in fixture
teardown.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]


class ServerFailed(AssertionError):
    pass


class ServerProcess:
    def __init__(
        self,
        model: str,
        *args: str,
        host: str = "127.0.0.1",
        stats_interval: float = 0.2,
        ready_timeout: float = 15.0,
        env: dict[str, str] | None = None,
    ):
        self.model = model
        cmd = [
            sys.executable,
            "-m",
            "servers",
            model,
            "--host",
            host,
            "--port",
            "0",
            "--stats-interval",
            str(stats_interval),
            *args,
        ]
        self.cmd = cmd
        self.proc = subprocess.Popen(
            cmd,
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, **(env or {})},
        )
        self._events: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._stderr: list[str] = []
        self._eof = False
        self.ready_line: str | None = None
        self._threads = [
            threading.Thread(target=self._read_stderr, daemon=True),
            threading.Thread(target=self._read_stdout, daemon=True),
        ]
        for t in self._threads:
            t.start()
        with self._cond:
            ok = self._cond.wait_for(
                lambda: self.ready_line is not None or self._eof, ready_timeout
            )
        if not ok or self.ready_line is None:
            self.close()
            raise ServerFailed(
                f"{' '.join(cmd)}: no READY line within {ready_timeout}s; "
                f"exit={self.proc.poll()} stderr:\n{self.stderr}"
            )
        parts = self.ready_line.split()
        self.host, port = parts[1].rsplit(":", 1)
        if self.host in ("0.0.0.0", "::"):
            self.host = "127.0.0.1"
        self.port = int(port)
        self.ready = dict(p.split("=", 1) for p in parts[2:])
        self.pid = int(self.ready["pid"])
        self.nofile = int(self.ready["nofile"])

    # -- readers ----------------------------------------------------------
    def _read_stdout(self) -> None:
        for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            with self._cond:
                if self.ready_line is None:
                    self.ready_line = line
                    if not line.startswith("READY "):
                        self._stderr.append(f"[first stdout line is not READY] {line}\n")
                        self.ready_line = None
                        self._eof = True
                else:
                    try:
                        self._events.append(json.loads(line))
                    except ValueError:
                        self._events.append({"event": "<not json>", "line": line})
                self._cond.notify_all()
        with self._cond:
            self._eof = True
            self._cond.notify_all()

    def _read_stderr(self) -> None:
        for raw in self.proc.stderr:
            self._stderr.append(raw.decode(errors="replace"))

    @property
    def stderr(self) -> str:
        return "".join(self._stderr)

    # -- queries ------------------------------------------------------------
    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        with self._cond:
            return [e for e in self._events if name is None or e.get("event") == name]

    def wait_event(
        self, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0, after: int = 0
    ) -> dict[str, Any]:
        """The first event (from index ``after``) matching ``pred``; raise on timeout."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for e in self._events[after:]:
                    if pred(e):
                        return e
                left = deadline - time.monotonic()
                if left <= 0 or self._eof:
                    raise ServerFailed(
                        f"{self.model}: no matching event within {timeout}s "
                        f"(exit={self.proc.poll()}); last events: {self._events[-3:]}\n"
                        f"stderr:\n{self.stderr}"
                    )
                self._cond.wait(left)

    def wait_stats(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0):
        """The first stats event printed from now on that satisfies ``pred``."""
        start = len(self.events())
        return self.wait_event(lambda e: e.get("event") == "stats" and pred(e), timeout, start)

    def latest_stats(self, timeout: float = 5.0) -> dict[str, Any]:
        """A stats event printed after this call (fresh counters)."""
        return self.wait_stats(lambda e: True, timeout)

    # -- ending -------------------------------------------------------------
    def terminate(self, sig: int = signal.SIGTERM, timeout: float = 15.0) -> dict[str, Any]:
        """Send ``sig``, wait for exit, return the final event (raise if none)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.close()
            raise ServerFailed(
                f"{self.model}: did not exit within {timeout}s of signal {sig}"
                f"\nstderr:\n{self.stderr}"
            ) from None
        return self.final()

    def final(self, timeout: float = 5.0) -> dict[str, Any]:
        return self.wait_event(lambda e: e.get("event") == "final", timeout)

    @property
    def returncode(self) -> int | None:
        return self.proc.poll()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()  # reaped: no zombie, no ResourceWarning later
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            pass
        for t in self._threads:
            t.join(5)
        if not any(t.is_alive() for t in self._threads):
            self.proc.stdout.close()
            self.proc.stderr.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def children_of(pid: int, *, zombies: bool = False) -> list[int]:
    """The pids whose parent is ``pid`` (from /proc/<pid>/stat: state, then
    ppid after the command name): the live ones, or only the zombies."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid and (fields[0] == "Z") == zombies:
            found.append(int(entry))
    return found
