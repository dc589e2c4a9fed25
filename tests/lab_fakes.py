"""A scripted Backend for run-loop tests: no processes, no sockets."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from lab.backends.base import Backend, LoadHandle, RunContext, ServerHandle
from lab.errors import BackendError
from lab.scenario.types import Scenario, ServerSpec

T0 = 1_700_000_000.0


def step_record(step: int, target: int, connected: int, *, t_end: float | None = None,
                failures: dict[str, int] | None = None,
                connect_failures: dict[str, int] | None = None, echo_count: int = 100,
                p99: float | None = 2.0) -> dict[str, Any]:
    """A loadgen step-result line as the loadgen writes it."""
    t_end = T0 + 10 * (step + 1) if t_end is None else t_end
    return {"step": step, "target_users": target, "t_start": t_end - 10, "t_ramp_end": t_end - 5,
            "t_end": t_end, "hold_s": 5.0, "users": target, "connected": connected,
            "connect_attempts": target, "connect_failures": connect_failures or {},
            "echo_count": echo_count, "rps": echo_count / 5, "p50_ms": 1.0, "p90_ms": 1.5,
            "p99_ms": p99, "max_ms": 9.0, "failures": failures or {}, "workers": 1}


def stats(t: float, connections: int, rss: int = 10_000_000) -> dict[str, Any]:
    return {"event": "stats", "time": t, "model": "m", "pid": 1, "connections": connections,
            "peak_connections": connections, "accepted": connections, "closed": 0,
            "refused": {}, "bytes_in": 64 * connections, "bytes_out": 64 * connections,
            "cpu_user_s": 1.5, "cpu_sys_s": 0.5, "rss_bytes": rss, "max_fd": connections + 4}


@dataclass
class Script:
    """What one fake server + load do: step records, server events, a crash."""

    steps: list[dict[str, Any]] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)
    crash_after: int | None = None  # the server dies once this many steps were released
    start_error: str | None = None
    interrupt_after: int | None = None  # KeyboardInterrupt once this many steps were released


class FakeServer(ServerHandle):
    def __init__(self, spec: ServerSpec, script: Script, load_state: dict[str, int]):
        self.spec, self.script, self.state = spec, script, load_state
        self.target_host, self.target_port = "127.0.0.1", 9
        self.ready = {"host": "127.0.0.1", "port": 9, "model": spec.model, "pid": 1,
                      "nofile": 20000}
        self.sent = 0
        self.stopped = False

    def _dead(self) -> bool:
        after = self.script.crash_after
        return after is not None and self.state["released"] >= after

    def poll_events(self) -> list[dict[str, Any]]:
        released = self.script.steps[: self.state["released"]]
        horizon = max((r["t_end"] for r in released), default=T0) + 0.5
        ready = [e for e in self.script.events if e["time"] <= horizon]
        new, self.sent = ready[self.sent:], len(ready)
        return new

    def exit_code(self) -> int | None:
        if self._dead():
            return -9
        return 0 if self.stopped else None

    def stop(self, timeout: float = 10.0) -> dict[str, Any] | None:
        if self._dead():
            return None
        self.stopped = True
        return {"event": "final", "time": T0 + 1000, "peak_connections": 1}

    def log_tail(self, lines: int = 40) -> str:
        return "Traceback: the fake server crashed" if self._dead() else "ok"


class FakeLoad(LoadHandle):
    def __init__(self, script: Script, state: dict[str, int]):
        self.script, self.state = script, state
        self.stopped = False

    def poll_step_results(self) -> list[dict[str, Any]]:
        if self.script.interrupt_after is not None and \
                self.state["released"] >= self.script.interrupt_after:
            raise KeyboardInterrupt
        index = self.state["released"]
        after = self.script.crash_after
        if index >= len(self.script.steps) or (after is not None and index > after):
            return []
        self.state["released"] += 1
        return [self.script.steps[index]]

    def exit_code(self) -> int | None:
        return 0 if self.state["released"] >= len(self.script.steps) else None

    def stop(self, timeout: float = 15.0) -> None:
        self.stopped = True

    def log_tail(self, lines: int = 40) -> str:
        return "master log"


class FakeBackend(Backend):
    name = "fake"

    def __init__(self, scripts: dict[str, Script]):
        self.scripts = scripts
        self.states: dict[str, dict[str, int]] = {}
        self.cleaned = 0
        self.loads: list[FakeLoad] = []

    def describe_hosts(self) -> dict[str, Any]:
        return {"local": {"nofile_hard": 20000}}

    def unapplied_settings(self, scenario: Scenario) -> list[str]:
        return ["servers[0].limits.memory: fake cannot"]

    def start_server(self, spec: ServerSpec, ctx: RunContext) -> ServerHandle:
        script = self.scripts[spec.name]
        if script.start_error:
            raise BackendError(script.start_error)
        self.states[spec.name] = {"released": 0}
        return FakeServer(spec, script, self.states[spec.name])

    def start_load(self, server: ServerHandle, ctx: RunContext, *, ui: bool = False) -> LoadHandle:
        load = FakeLoad(self.scripts[server.spec.name], self.states[server.spec.name])
        self.loads.append(load)
        return load

    def cleanup(self) -> None:
        self.cleaned += 1
