"""The local backend: servers and Locust as processes on this machine.

Used when no Docker daemon answers (``backend: auto``) or on request
(``--backend local``). A built-in server is ``python -m servers MODEL`` with
the scenario's ``--nofile``/``--backlog``; a custom one is its ``command``
(``{python}`` and ``{port}`` substituted, run in the scenario file's
directory). The Locust master and workers are local processes; each worker
binds its own 127.0.0.x source addresses, so one worker's ephemeral ports do
not limit another's.

A server's ``limits.memory`` is a memory cgroup made for it
(``lab/backends/cgroup.py``; a machine that cannot make one refuses the
scenario before anything starts). What only containers can do (namespaced
sysctls, a cpuset, several hosts) is listed by
:meth:`LocalBackend.unapplied_settings` and recorded in ``run.json``.
Every child gets ``PR_SET_PDEATHSIG`` (``lab/backends/children.py``): if the
lab dies, its servers and load generators die with it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from contract.env import ALLOW_EXTERNAL_TARGETS, SERVER_EVENTS
from lab import ROOT
from lab.backends.base import (
    Backend,
    LoadHandle,
    LostWorker,
    RunContext,
    ServerHandle,
    worker_lost,
)
from lab.backends.cgroup import (
    CgroupUnavailable,
    MemoryCgroup,
    cgroup_name,
    killed_by_oom,
    layout,
    parse_size,
)
from lab.backends.children import (  # noqa: F401 - free_port, tail_file: used by the tests
    LOOPBACK,
    free_port,
    raise_nofile_soft_limit,
    spawn,
    tail_file,
    terminate,
)
from lab.backends.local_servers import CustomServer, LocalServer, port_in_use
from lab.backends.locust_cmd import WEB_HOST, WEB_PORT, master_command, worker_command
from lab.backends.server_cmd import processes, server_command, substitute
from lab.errors import BackendError, InputError
from lab.host import limits as hostlimits
from lab.host.facts import local_host_facts
from lab.host.tc import Shaper, shaped_classes, shaping_summary
from lab.host.workers import workers_needed
from lab.owner import temp_prefix
from lab.scenario.types import Scenario, ServerSpec
from lab.teardown import attempt


class LocalLoad(LoadHandle):
    """The Locust master and its workers as local processes."""

    def __init__(self, master: subprocess.Popen, workers: list[subprocess.Popen],
                 master_log: Path, step_results: Path, web_url: str | None):
        self.master, self.workers = master, workers
        self.worker_logs: list[Path] = []
        self.master_log, self.step_results = master_log, step_results
        self.web_url = web_url
        self._offset = 0
        self._partial = b""

    def poll_step_results(self) -> list[dict[str, Any]]:
        try:
            with self.step_results.open("rb") as f:
                f.seek(self._offset)
                data = f.read()
        except FileNotFoundError:
            return []
        self._offset += len(data)
        data = self._partial + data
        *lines, self._partial = data.split(b"\n")
        return [json.loads(line) for line in lines if line.strip()]

    def exit_code(self) -> int | None:
        return self.master.poll()

    def stop(self, timeout: float = 15.0) -> None:
        terminate(self.master, timeout)
        for worker in self.workers:  # the master tells them to quit; make sure
            terminate(worker, 5)

    def log_tail(self, lines: int = 40) -> str:
        return tail_file(self.master_log, lines)

    def master_oom_evidence(self) -> str:
        return killed_by_oom(self.master)

    def net_procs(self) -> list[Path]:
        return [Path("/proc/net")]  # local workers share this machine's namespace

    def lost_workers(self, lines: int = 12) -> list[LostWorker]:
        if self.master.poll() is not None:  # the master ended the run: workers follow it
            return []
        return [LostWorker(log.name.removesuffix(".log"), "local", proc.poll(),
                           tail_file(log, lines), killed_by_oom(proc))
                for proc, log in zip(self.workers, self.worker_logs, strict=True)
                if worker_lost(proc.poll())]


def source_ips(worker: int, per_worker: int = 2) -> str:
    """Worker ``i``'s own loopback source addresses: 127.0.0.(10+2i), (11+2i) ..."""
    first = 10 + worker * per_worker
    if first + per_worker > 255:
        raise BackendError(f"too many local workers ({worker + 1}) for 127.0.0.x addresses")
    return ",".join(f"127.0.0.{first + k}" for k in range(per_worker))


class LocalBackend(Backend):
    name = "local"
    conntrack_here = True

    def __init__(self, scenario: Scenario, progress: Any = None, *, web_port: int = WEB_PORT,
                 web_host: str = WEB_HOST):
        self.scenario = scenario
        self.progress = progress or (lambda message: None)
        self.web_host, self.web_port = web_host, web_port  # --ui: the Locust web UI
        self.memory = {s.name: parse_size(s.limits.memory) for s in scenario.servers
                       if s.limits.memory}
        if self.memory:
            try:
                self.cgroups = layout()
            except CgroupUnavailable as exc:
                raise InputError(f"limits.memory of {', '.join(self.memory)}: the local "
                                 f"backend enforces it with a memory cgroup, and cannot here: "
                                 f"{exc}; run as root on a host with cgroups, use --backend "
                                 "docker, or remove the limit") from None
        self.nofile_hard = raise_nofile_soft_limit()
        self.servers: list[LocalServer] = []
        self.loads: list[LocalLoad] = []
        # load.network: the lab's qdisc on lo, for the whole run (lab/host/tc.py)
        self.shaper = Shaper("lo", shaped_classes(scenario.load), where="lo (loopback)")
        self.tmp = Path(tempfile.mkdtemp(prefix=temp_prefix()))  # names its owner for clean

    def describe_hosts(self) -> dict[str, Any]:
        return {"local": local_host_facts().to_record()}

    def unapplied_settings(self, scenario: Scenario) -> list[str]:
        """Settings only containers can apply; host-wide limits are raised here
        only on opt-in (``host_limits.raise_host_limits``)."""
        notes = []
        for i, spec in enumerate(scenario.servers):
            limits = spec.limits
            for key, value in (("sysctls", dict(limits.sysctls) or None),
                               ("cpuset", limits.cpuset)):
                if value is not None:
                    notes.append(f"servers[{i}].limits.{key} ({value}): only containers can "
                                 "apply it; the host's own settings hold")
        if len(scenario.hosts) > 1 or any(h.endpoint != "local" for h in scenario.hosts):
            notes.append("hosts/placement: the local backend runs everything on this machine")
        notes += hostlimits.apply_host_limits("local", scenario.host_limits,
                                              hostlimits.read_host_limits(),
                                              hostlimits.write_sysctl_local)
        return notes

    def start_server(self, spec: ServerSpec, ctx: RunContext) -> ServerHandle:
        if spec.is_custom:
            if not spec.command:
                raise BackendError(f"custom server {spec.name} has only an image; the local "
                                   "backend needs a 'command' (or use --backend docker)")
            cwd = ctx.scenario.source_path.parent if ctx.scenario.source_path else ROOT
            cmd = substitute(spec.command or (), python=sys.executable, port=spec.port)
            if spec.limits.nofile != "max":  # the custom server inherits the lab's limit
                cmd = ["prlimit", f"--nofile={spec.limits.nofile}", "--", *cmd]
            busy = port_in_use(int(spec.port))
            if busy:
                raise BackendError(f"custom server {spec.name}: {busy}")
            server: LocalServer = CustomServer(spec, cmd, ctx.logs_dir, cwd, ctx.stem(spec.name),
                                               self._cgroup(spec, ctx))
        else:
            nofile = self.nofile_hard if spec.limits.nofile == "max" else int(spec.limits.nofile)
            count = processes(spec, nofile, ctx.scenario.max_connections)
            if spec.processes == "auto":  # what ran: also in READY and the events
                self.progress(f"local: {spec.name}: processes auto = {count} (nofile {nofile}, "
                              f"top step {ctx.scenario.max_connections})")
            server = LocalServer(spec, self.server_command(spec, count), ctx.logs_dir, ROOT,
                                 ctx.stem(spec.name), self._cgroup(spec, ctx))
        self.servers.append(server)
        server.wait_ready()
        return server

    def _cgroup(self, spec: ServerSpec, ctx: RunContext) -> MemoryCgroup | None:
        """``limits.memory``: the server's own memory cgroup (lab/backends/cgroup.py)."""
        if spec.name not in self.memory:
            return None
        try:
            return MemoryCgroup(cgroup_name(ctx.stem(ctx.run_id), spec.name),
                                self.memory[spec.name], self.cgroups)
        except CgroupUnavailable as exc:
            raise BackendError(f"{spec.name}: limits.memory: {exc}") from None

    @staticmethod
    def server_command(spec: ServerSpec, processes: int = 1) -> list[str]:
        return server_command(spec, python=sys.executable, host=LOOPBACK, port=0,
                              nofile=str(spec.limits.nofile), processes=processes)

    def start_load(self, server: ServerHandle, ctx: RunContext, *, ui: bool = False) -> LoadHandle:
        load_spec = ctx.scenario.load
        name = ctx.stem(server.spec.name)
        count = workers_needed(load_spec, self.nofile_hard)
        port = free_port()
        if self.shaper.classes and not self.shaper.applied:
            self.shaper.apply()
            self.progress(f"local: load.network on lo: {shaping_summary(load_spec)}")
        step_results = self.tmp / f"{name}-{len(self.loads)}.steps.jsonl"
        master_cmd = master_command(load_spec, target_host=server.target_host,
                                    target_port=server.target_port, workers=count,
                                    step_results=str(step_results), ui=ui, master_port=port,
                                    web_host=self.web_host, web_port=self.web_port,
                                    python=sys.executable)
        env = {ALLOW_EXTERNAL_TARGETS: "1"} if ctx.scenario.allow_external_targets else {}
        master_env = dict(env)
        if ui and ctx.server_events:  # the web UI's Lab tab tails them
            master_env[SERVER_EVENTS] = os.pathsep.join(str(p) for p in ctx.server_events)
        master_log = ctx.logs_dir / f"{name}.locust-master.log"
        master = spawn(master_cmd, master_log, env=master_env)
        shown = LOOPBACK if self.web_host in ("", "0.0.0.0", "::") else self.web_host
        web_url = f"http://{shown}:{self.web_port}" if ui else None
        # Registered before the workers start, so cleanup() stops the master
        # even when a worker cannot be started.
        load = LocalLoad(master, [], master_log, step_results, web_url)
        self.loads.append(load)
        for i in range(count):
            cmd = worker_command(load_spec, master_host=LOOPBACK, master_port=port,
                                 source_ips=source_ips(i), python=sys.executable)
            log = ctx.logs_dir / f"{name}.locust-worker-{i}.log"
            load.workers.append(spawn(cmd, log, env=env))
            load.worker_logs.append(log)
        return load

    def cleanup(self) -> list[str]:
        """Stop every load and server process (SIGTERM, then SIGKILL to its
        whole process group); every item is attempted whatever the one before
        raised. Idempotent; returns the problems met."""
        problems: list[str] = []
        loads, self.loads = self.loads, []
        servers, self.servers = self.servers, []
        for load in loads:
            attempt("stopping the load", lambda ld=load: ld.stop(5), problems)
        for server in servers:
            attempt(f"stopping {server.spec.name}", lambda s=server: s.stop(5), problems)
        attempt("removing load.network's qdisc from lo", self.shaper.remove, problems)
        shutil.rmtree(self.tmp, ignore_errors=True)
        return problems
