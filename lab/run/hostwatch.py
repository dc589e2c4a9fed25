"""Hosts that stop answering while a model's steps run.

A Docker host can go away mid-run in ways no container exit shows: its
daemon stopped (connections refused), its network link down (packets
dropped: every call waits for its timeout), or a lab container on it paused
(the daemon answers, but a frozen Locust worker neither sends load nor
answers its master, so a ramp never reaches its target and the step never
ends). Before this watch such a step waited for the run loop's stuck limit.

The watch runs each host's check (``Backend.host_checks``: on Docker, a
``/_ping`` of its daemon with a short timeout and the state of the run's
containers there) in a background thread, every ``PING_EVERY_S``, so the
poll loop is never blocked by a silent host. A host is **gone** after
``MISSES`` checks in a row that failed; a check that fails takes at most
``PING_TIMEOUT_S``. The last good check came just before the host went, so
the watch names it within::

    DETECT_BOUND_S = MISSES * (PING_EVERY_S + PING_TIMEOUT_S)   # 12 s

and the poll loop, which reads :meth:`HostWatch.gone` each tick, acts within
one poll more. A call of the poll loop that fails first (the server's or the
master's state unreadable: ``exit_code`` -1) asks :meth:`HostWatch.confirm`,
which checks that host at once. What the run does with a gone host is in
``lab/run/poller.py``: a load host gone is the step's ``worker_lost``; the
server's host gone is a host finding, the model's error, never its limit;
either ends the run with :class:`HostGone` (exit 1).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from lab.errors import BackendError

PING_EVERY_S = 3.0
PING_TIMEOUT_S = 3.0
MISSES = 2
DETECT_BOUND_S = MISSES * (PING_EVERY_S + PING_TIMEOUT_S)

# host -> check(timeout): None when the host answers as it should, else what was
# seen: a sentence (the whole host is gone), or (sentence, roles) when only the
# lab's containers of those roles there are (a paused worker: "worker").
Seen = str | tuple[str, frozenset[str]]
Check = Callable[[float], Seen | None]


class HostGone(BackendError):
    """A host of the run stopped answering: the run ends (exit 1) after its
    teardown, which says what it could not reach."""


@dataclass(frozen=True)
class Gone:
    """A host that stopped answering: since when, and what the last check saw."""

    host: str
    since: float  # the first failed check of the run of misses (clock time)
    seen: str
    roles: frozenset[str] | None = None  # only these roles are affected; None: all

    def hits(self, role: str) -> bool:
        """Whether this host's trouble reaches the lab's ``role`` there."""
        return self.roles is None or role in self.roles

    def sentence(self) -> str:
        at = time.strftime("%H:%M:%S", time.gmtime(self.since))
        return f"host {self.host} stopped answering at {at} UTC ({self.seen})"


class HostWatch:
    """Checks every host of the run in the background; names those gone."""

    def __init__(self, checks: Mapping[str, Check] | Callable[[], Mapping[str, Check]], *,
                 clock: Callable[[], float] = time.time, every: float = PING_EVERY_S,
                 timeout: float = PING_TIMEOUT_S, misses: int = MISSES):
        self._checks = checks if callable(checks) else (lambda: checks)
        self.clock, self.every, self.timeout, self.misses = clock, every, timeout, misses
        self._failed: dict[str, tuple[int, float]] = {}  # host -> (misses in a row, first)
        self._gone: dict[str, Gone] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def check_once(self) -> None:
        """One round: every host's check, once."""
        for host, check in dict(self._checks()).items():
            self._check(host, check)

    def confirm(self, host: str) -> Gone | None:
        """Check ``host`` now (a call to it just failed): gone at once if this
        check fails too — two failures in a row, the watch's own rule."""
        check = dict(self._checks()).get(host)
        if check is None:
            return None
        with self._lock:
            if host not in self._gone:
                count, first = self._failed.get(host, (0, self.clock()))
                self._failed[host] = (max(count, self.misses - 1), first)
        self._check(host, check)
        return self.gone().get(host)

    def _check(self, host: str, check: Check) -> None:
        started = self.clock()
        roles = None
        try:
            seen = check(self.timeout)
        except Exception as exc:  # noqa: BLE001 - any failure to answer is what was seen
            seen = f"{type(exc).__name__}: {str(exc).splitlines()[0][:160] if str(exc) else ''}"
        if isinstance(seen, tuple):
            seen, roles = seen
        with self._lock:
            if seen is None:
                self._failed.pop(host, None)
                return
            count, first = self._failed.get(host, (0, started))
            self._failed[host] = (count + 1, first)
            if count + 1 >= self.misses and host not in self._gone:
                self._gone[host] = Gone(host, first, seen, roles)

    def gone(self) -> dict[str, Gone]:
        with self._lock:
            return dict(self._gone)

    def run(self, sleep: Callable[[float], bool] | None = None) -> None:
        """Check every ``every`` s until stopped (the thread's body; ``sleep``
        returns True to stop, for tests with a fake clock)."""
        sleep = sleep or self._stop.wait
        while True:
            self.check_once()
            if sleep(self.every):
                return

    def start(self) -> None:
        """Start watching in a daemon thread (idempotent; no hosts: nothing to do)."""
        if self._thread is not None or not dict(self._checks()):
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="iolab-hostwatch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop the thread (it ends within one check's timeout)."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(self.timeout + 1)
