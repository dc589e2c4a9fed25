"""Handles on a server container and on a Locust master + worker containers.

``container.stop(timeout=T)`` sends SIGTERM to the container's PID 1 and
SIGKILL after T seconds. Every lab container runs with ``init=True``: PID 1
is Docker's tiny init (``docker-init``, tini), which forwards the signal to
Python and reaps orphans. Python itself as PID 1 would be unsafe: the kernel
drops signals to a namespace's init that has no handler installed.
"""

from __future__ import annotations

import json
import queue
import time
from pathlib import Path
from typing import Any

from lab.backends.base import LoadHandle, LostWorker, ServerHandle, worker_lost
from lab.backends.cgroup import kernel_log_line
from lab.backends.docker.container_io import CgroupEvents, LogFollower, fetch_file
from lab.host.proctree import established_on
from lab.scenario.types import ServerSpec


def exit_code_of(container) -> int | None:
    """None while it runs; its exit code; -1 when it is gone, or its daemon
    no longer answers (refused, reset: the host went away mid-run)."""
    import docker.errors

    try:
        container.reload()
    except docker.errors.NotFound:
        return -1
    except docker.errors.APIError:
        raise  # the daemon answered: not a container that is gone
    except OSError:  # requests' connection errors: the daemon no longer answers
        return -1
    state = container.attrs.get("State", {})
    return None if state.get("Running") or state.get("Status") == "created" else state.get(
        "ExitCode")


def oom_evidence(container) -> str | None:
    """Docker's word for an OOM kill (``State.OOMKilled``, set when the
    container's memory cgroup counted an oom_kill), with the kernel's log line
    when the daemon shares this machine's kernel; None without a kill. Read
    from the state of the last ``exit_code_of``."""
    state = container.attrs.get("State", {})
    if not state.get("OOMKilled"):
        return None
    said = f"Docker: State.OOMKilled true, exit {state.get('ExitCode')}"
    local = str(getattr(container.client.api, "base_url", "")).startswith("http+docker://")
    line = kernel_log_line(memcg=container.id) if local else None
    return f"{said}; kernel: {line}" if line else said


def save_logs(container, path: Path) -> None:
    """The container's whole output into ``path`` (for containers not followed)."""
    import docker.errors

    try:
        data = container.logs(stdout=True, stderr=True)
    except (docker.errors.APIError, OSError):  # OSError: its daemon went away
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def stop_quietly(container, timeout: float) -> None:
    import docker.errors

    try:
        container.stop(timeout=max(1, int(timeout)))
    except (docker.errors.APIError, OSError):  # OSError: its daemon went away, so did it
        pass


def container_net(container, reload: bool = False) -> Path | None:
    """A container's namespace through its init pid's ``/proc/<pid>/net``,
    readable only when the daemon runs on this machine (a unix socket:
    docker-py's ``http+docker://`` base URL); a remote pid means nothing here."""
    import docker.errors

    local = str(getattr(container.client.api, "base_url", "")).startswith("http+docker://")
    if not local:
        return None
    if reload:  # a container just started: its attrs may predate its pid
        try:
            container.reload()
        except (docker.errors.APIError, OSError):
            return None
    pid = container.attrs.get("State", {}).get("Pid")
    net = Path(f"/proc/{pid}/net")
    return net if pid and net.exists() else None


class DockerServerHandle(ServerHandle):
    """A server container. A custom server prints no events: its stats come
    from its cgroup (``CgroupEvents``) and its connections from its network
    namespace when the daemon is local (otherwise unknown)."""

    def __init__(self, spec: ServerSpec, container, follower: LogFollower,
                 target_host: str, target_port: int, ready: dict[str, Any]):
        self.spec = spec
        self.container = container
        self.follower = follower
        self.target_host = target_host
        self.target_port = target_port
        self.ready = ready
        self.cgroup: queue.SimpleQueue[dict[str, Any]] = queue.SimpleQueue()
        self.sampler: CgroupEvents | None = None
        if spec.is_custom and spec.port:
            net, port = self.net_proc(), int(spec.port)
            self.sampler = CgroupEvents(
                container, self.cgroup.put,
                lambda: established_on(port, net) if net is not None else None)
            self.sampler.start()

    def poll_events(self) -> list[dict[str, Any]]:
        events = self.follower.drain()
        while not self.cgroup.empty():
            events.append(self.cgroup.get_nowait())
        return events

    def exit_code(self) -> int | None:
        return exit_code_of(self.container)

    def stop(self, timeout: float = 10.0) -> dict[str, Any] | None:
        if self.sampler is not None:
            self.sampler.stop()
        stop_quietly(self.container, timeout)
        self.follower.join(timeout=timeout)  # the log stream ends with the container
        return self.follower.final

    def log_tail(self, lines: int = 40) -> str:
        return self.follower.tail(lines)

    def oom_killed(self) -> bool:
        return bool(self.container.attrs.get("State", {}).get("OOMKilled"))

    def oom_evidence(self) -> str | None:
        return oom_evidence(self.container)

    def net_proc(self) -> Path | None:
        return container_net(self.container)


class StepResultsReader:
    """Reads the master's ``--step-results`` JSON-lines file through the Docker
    API, at most every ``min_interval`` s, returning only complete new lines."""

    def __init__(self, container, path: str, min_interval: float = 0.5):
        self.container = container
        self.path = path
        self.min_interval = min_interval
        self._consumed = 0  # bytes of complete lines already returned
        self._last = 0.0

    def poll(self, force: bool = False) -> list[dict[str, Any]]:
        now = time.monotonic()
        if not force and now - self._last < self.min_interval:
            return []
        self._last = now
        data = fetch_file(self.container, self.path) or b""
        end = data.rfind(b"\n") + 1
        fresh, self._consumed = data[self._consumed:end], max(self._consumed, end)
        records = []
        for line in fresh.splitlines():
            if line.strip():
                try:
                    records.append(json.loads(line))
                except ValueError:
                    continue
        return records


class DockerLoadHandle(LoadHandle):
    def __init__(self, master, workers: list, steps_path: str, logs_dir: Path,
                 web_url: str | None = None):
        self.master = master
        self.workers = workers
        self.web_url = web_url
        self.logs_dir = logs_dir
        self.reader = StepResultsReader(master, steps_path)
        self.worker_addresses: list[str] = []  # each worker's IP on its lab network
        self.master_host = master.labels.get("iolab.host", "?")
        self._stopped = False

    def poll_step_results(self) -> list[dict[str, Any]]:
        import docker.errors

        try:
            return self.reader.poll(force=self.exit_code() is not None)
        except docker.errors.APIError:
            return []

    def exit_code(self) -> int | None:
        return exit_code_of(self.master)

    def stop(self, timeout: float = 15.0) -> None:
        import docker.errors

        if self._stopped:
            return
        self._stopped = True
        stop_quietly(self.master, timeout)  # the master first: no new steps
        for worker in self.workers:
            stop_quietly(worker, timeout)
        for container in [self.master, *self.workers]:
            save_logs(container, self.logs_dir / f"{container.name}.log")
        try:
            data = fetch_file(self.master, self.reader.path)
        except (docker.errors.APIError, OSError):  # OSError: its daemon went away
            data = None
        if data:
            (self.logs_dir / f"{self.master.name}-steps.jsonl").write_bytes(data)

    def log_tail(self, lines: int = 40) -> str:
        return _tail(self.master, lines)

    def master_oom_evidence(self) -> str:
        return oom_evidence(self.master) or ""

    def net_procs(self) -> list[Path]:
        return [net for w in self.workers if (net := container_net(w, reload=True))]

    def lost_workers(self, lines: int = 12) -> list[LostWorker]:
        if self._stopped or self.exit_code() is not None:
            return []
        return [LostWorker(w.name, w.labels.get("iolab.host", "?"), code, _tail(w, lines),
                           oom_evidence(w) or "")
                for w in self.workers if worker_lost(code := exit_code_of(w))]


def _tail(container, lines: int) -> str:
    import docker.errors

    try:
        return container.logs(tail=lines).decode(errors="replace")
    except (docker.errors.APIError, OSError) as exc:  # OSError: its daemon went away
        from lab.backends.docker.hosts import short_reason

        return f"[no log: {short_reason(exc)}]"
