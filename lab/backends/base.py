"""The interface every backend implements (local processes, Docker containers).

The run loop (``lab/run/loop.py``) only talks to these classes; it never knows
whether a server is a subprocess or a container. A backend owns everything it
starts and removes all of it in ``cleanup()``, which must be idempotent and
safe to call from a ``finally`` or a signal handler.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from lab.scenario.types import Scenario, ServerSpec


@dataclass(frozen=True)
class RunContext:
    """Where a run keeps its files. ``run_id`` is unique and safe in names
    (containers are named ``iolab-<run_id>-<role>``)."""

    run_id: str
    run_dir: Path
    scenario: Scenario
    # --ui: the servers' event files the web UI's Lab tab tails (the backend
    # hands them to the Locust master it starts; see loadgen/lab_tab.py).
    server_events: tuple[Path, ...] = ()
    repeat: int = 0  # load.repeat: which pass over the models this is (0-based)

    @property
    def logs_dir(self) -> Path:
        return self.run_dir / "logs"

    def stem(self, name: str) -> str:
        """The file stem for ``name``'s logs in this pass: ``epoll`` in the
        first, ``epoll.r1``, ``epoll.r2`` ... in the repeats (nothing overwritten)."""
        return name if self.repeat == 0 else f"{name}.r{self.repeat}"


class ServerHandle(ABC):
    """A started server that printed its READY line."""

    spec: ServerSpec
    # Where the load generators connect (as seen from them).
    target_host: str
    target_port: int
    # Parsed READY line: {"host", "port", "model", "pid", "nofile"}.
    ready: dict[str, Any]

    @abstractmethod
    def poll_events(self) -> list[dict[str, Any]]:
        """JSON events (stats/limit/final) printed since the last call; never blocks."""

    @abstractmethod
    def exit_code(self) -> int | None:
        """None while running."""

    @abstractmethod
    def stop(self, timeout: float = 10.0) -> dict[str, Any] | None:
        """SIGTERM, wait, return the final event (None if none came)."""

    @abstractmethod
    def log_tail(self, lines: int = 40) -> str:
        """The end of the server's output, for crash reports."""

    def oom_killed(self) -> bool:
        """True when the kernel's OOM killer ended this server (Docker says so)."""
        return False

    def oom_evidence(self) -> str | None:
        """The kernel's word for an OOM kill of this server (Docker's
        ``State.OOMKilled``, the cgroup's ``oom_kill`` count, the kernel log
        line), None when there is none."""
        return None

    def net_proc(self) -> Path | None:
        """``/proc/.../net`` of the server's network namespace, when this machine
        can read it (lab/run/kernel.py); None otherwise."""
        return None


@dataclass(frozen=True)
class LostWorker:
    """A load-generator process that ended while the run still needed it.

    A Locust worker never exits on its own while its master runs, so any exit
    before the master's is a loss (killed, OOM, crashed); the master's own
    exit before the last step is one too."""

    name: str  # its process or container name, as the logs directory has it
    host: str  # the scenario host it ran on
    exit_code: int | None
    log_tail: str
    evidence: str = ""  # what the kernel or the host watch saw (an OOM kill, a host gone)

    def describe(self) -> str:
        code = "" if self.exit_code is None else f" (exit {self.exit_code})"
        seen = f": {self.evidence}" if self.evidence else ""
        return f"{self.name} on host {self.host}{code}{seen}"


class LoadHandle(ABC):
    """A running Locust master plus its workers."""

    web_url: str | None = None
    master_host: str = "local"  # the scenario host the Locust master runs on

    @abstractmethod
    def poll_step_results(self) -> list[dict[str, Any]]:
        """Step-result records written since the last call; never blocks."""

    @abstractmethod
    def exit_code(self) -> int | None:
        """The master's exit code, None while it runs."""

    @abstractmethod
    def stop(self, timeout: float = 15.0) -> None:
        """Stop master and workers (the master writes no further steps)."""

    @abstractmethod
    def log_tail(self, lines: int = 40) -> str:
        """The end of the master's log."""

    def lost_workers(self, lines: int = 12) -> list[LostWorker]:
        """Workers that exited while the master still ran, with their log tails
        (see :func:`worker_lost`)."""
        return []

    def master_oom_evidence(self) -> str:
        """The kernel's word for an OOM kill of the master ("" when none)."""
        return ""

    def net_procs(self) -> list[Path]:
        """``/proc/.../net`` of each network namespace the load's sockets are
        in, those this machine can read (lab/run/load_ports.py); empty when none."""
        return []


def worker_lost(exit_code: int | None) -> bool:
    """Whether a Locust worker that ended with ``exit_code`` (None: still
    running) was lost. A worker exits 0 only after its master's quit
    message, which the master sends as it ends the run and a moment before it
    exits itself: that worker finished, it was not lost (a run whose record
    was read in that moment named its last step ``worker_lost``)."""
    return exit_code is not None and exit_code != 0


class Backend(ABC):
    name: str
    # Whether the servers' and the load's connections are tracked in the lab's
    # own network namespace, so its conntrack table must have room for them
    # (lab/run/conntrack_room.py): the local backend's are; each Docker
    # container has a namespace, and a table count, of its own.
    conntrack_here: bool = False

    @abstractmethod
    def describe_hosts(self) -> dict[str, Any]:
        """Metadata for run.json: per host kernel, CPUs, memory, nofile hard
        limit, fs.file-max, fs.nr_open, port range, somaxconn, pid_max,
        Docker version (if any)."""

    @abstractmethod
    def unapplied_settings(self, scenario: Scenario) -> list[str]:
        """Scenario settings this backend cannot apply, each as one sentence."""

    @abstractmethod
    def start_server(self, spec: ServerSpec, ctx: RunContext) -> ServerHandle:
        """Start one server and wait for READY (raise BackendError with the
        log tail if it never comes or exits first)."""

    @abstractmethod
    def start_load(self, server: ServerHandle, ctx: RunContext, *, ui: bool = False) -> LoadHandle:
        """Start the Locust master and workers against ``server``, running the
        scenario's steps (headless unless ``ui``)."""

    def on_this_machine(self, host: str) -> bool:
        """Whether ``host`` is the machine the lab runs on (its /proc is ours to
        read). The local backend: always."""
        return True

    def host_checks(self) -> dict[str, Any]:
        """host -> ``check(timeout)``: None while that host answers, else what
        was seen (lab/run/hostwatch.py). Empty: nothing here can go away."""
        return {}

    @abstractmethod
    def cleanup(self) -> list[str]:
        """Remove every process/container/network this backend started.
        Idempotent; attempts every item whatever the previous one raised and
        returns the problems it met (one line each) instead of raising."""
