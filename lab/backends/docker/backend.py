"""The Docker backend: servers and Locust as containers, on one or many hosts.

Per run and per daemon there is one bridge network ``iolab-<run>`` in
198.18.0.0/15 (``lab/backends/docker/network.py``); which hosts share a daemon,
each daemon's facts and its network are kept by ``Daemons``
(``lab/backends/docker/daemons.py``). Every container is labelled
``iolab=1``, ``iolab.run=<run>``, ``iolab.role=server|master|worker`` and
``iolab.host=<host name>``, and named ``iolab-<run>-<role>[-...]``;
``cleanup()`` removes by handle *and* by label, so a crash between create and
bookkeeping leaves nothing behind.

What each container gets, and why:

- ``ulimits nofile`` — the process's RLIMIT_NOFILE. ``max`` is the highest
  value the host's daemon can grant (``lab/backends/docker/hosts.py``); workers get
  the same, since every Locust user holds a socket.
- namespaced ``sysctls`` (``lab/backends/docker/specs.py``) — ``net.core.somaxconn``
  (the kernel silently caps a ``listen()`` backlog to it) for servers; a wide
  ``net.ipv4.ip_local_port_range`` and ``tcp_tw_reuse`` for workers (each
  worker is its own network namespace with its own IP and source ports).
- ``cpuset_cpus``/``mem_limit`` from the scenario, so runs are comparable.
- security: a non-root user (the image's), ``cap_drop=ALL``,
  ``no-new-privileges``, never privileged; Docker's default seccomp profile,
  except the io_uring model, which gets ``docker/seccomp-io_uring.json``.
- the Locust web UI is published on 127.0.0.1 only.

Addressing across hosts: containers on the server's daemon reach it by its IP
on the lab network; when any load container is on another daemon, the
server's port (and the master's port, likewise) is published on that host's
``address`` and everyone uses ``address:published_port``. The server's port is
published once per worker (up to ``MAX_SERVER_BINDINGS``) and each worker
connects to its own one (loadgen's worker-local ``--target-port``): a load
host's workers all leave through its one address (Docker's MASQUERADE), and
one source address holds at most ~64,500 connections to one address:port
(the NAT's source ports 1024-65535), so one port for all would cap each load
host there.
"""

from __future__ import annotations

import itertools
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from contract.env import ALLOW_EXTERNAL_TARGETS, SERVER_EVENTS
from contract.network import is_safe_target
from lab.backends import locust_cmd
from lab.backends.base import Backend, LoadHandle, RunContext, ServerHandle
from lab.backends.docker.container_io import LogFollower, StatsSampler
from lab.backends.docker.daemons import Daemons
from lab.backends.docker.handles import (
    DockerLoadHandle,
    DockerServerHandle,
    exit_code_of,
    stop_quietly,
)
from lab.backends.docker.hosts import LABEL, unreachable
from lab.backends.docker.images import ensure_image
from lab.backends.docker.network import container_ip, published_port, published_ports
from lab.backends.docker.specs import (
    SERVER_PORT,
    WORKDIR_PARENT,
    server_options,
    worker_options,
)
from lab.backends.server_cmd import processes, server_command
from lab.errors import BackendError
from lab.host.workers import workers_needed
from lab.owner import OWNER_LABEL, owner_id
from lab.scenario.types import Scenario, ServerSpec
from lab.teardown import attempt

READY_TIMEOUT_S = 60.0
MAX_SERVER_BINDINGS = 16  # published ports per server (one docker-proxy process each)
STEPS_PATH = "/tmp/iolab-steps.jsonl"  # the master's --step-results, read via the API
WORKER_SYSCTLS = {"net.ipv4.ip_local_port_range": "1024 65000", "net.ipv4.tcp_tw_reuse": "1"}


class DockerBackend(Backend):
    name = "docker"

    def __init__(self, scenario: Scenario, clients: Mapping[str, Any] | None = None,
                 progress: Callable[[str], None] | None = None, *, image: str | None = None,
                 isolate_hosts: bool = False):
        """``clients``: host name -> docker client (default: one per scenario host
        endpoint). ``image``: use this tag instead of ensuring the lab image.
        ``isolate_hosts``: treat every host name as its own Docker host even
        when two endpoints reach one daemon (its own network, traffic through
        published ports): the cross-host path, testable on one machine."""
        self.scenario = scenario
        self.owner = owner_id()  # labels every container and network: clean spares live runs
        self.progress = progress or (lambda _msg: None)
        self._image = image
        self.daemons = Daemons(scenario, clients, self.progress, self.image, self.owner,
                               isolate_hosts=isolate_hosts)
        self._containers: list[tuple[Path, Any]] = []  # (log file, container)
        self._samplers: list[StatsSampler] = []
        self._run_ids: set[str] = set()
        self._names = itertools.count(1)
        self._lock = threading.RLock()

    # ---- hosts (per daemon: daemons.py) ----------------------------------------
    def image(self) -> str:
        if self._image is None:
            # Build where this machine's daemon is (the offline base needs
            # debootstrap and `docker import` here), found by the marker test:
            # a unix:// socket may be another daemon. The others get a copy.
            clients = self.daemons.clients
            here = self.daemons.here()
            ordered = {h: clients[h] for h in sorted(clients, key=lambda h: h not in here)}
            self._image = ensure_image(ordered, self.progress)
        return self._image

    def describe_hosts(self) -> dict[str, Any]:
        return self.daemons.describe()

    def unapplied_settings(self, scenario: Scenario) -> list[str]:
        return self.daemons.unapplied_settings(scenario)

    def on_this_machine(self, host: str) -> bool:
        """By the marker test (``Daemons.here``), not by the endpoint's spelling."""
        return host in self.daemons.here()

    def host_checks(self) -> dict[str, Any]:
        with self._lock:
            running = [c for _, c in self._containers]
        return self.daemons.checks(lambda: running)

    # ---- containers ------------------------------------------------------------
    def _run(self, host: str, ctx: RunContext, role: str, name: str, command: list[str], *,
             image: str | None = None, nofile: int, sysctls: dict[str, str] | None = None,
             ports: dict | None = None, security_opt: tuple[str, ...] = (),
             files: bytes | None = None, **extra: Any):
        """Create and start one lab container on ``host`` (security defaults here).
        Docker's refusals (a sysctl it does not allow, an rlimit above what the
        daemon may set, a missing image) become a BackendError naming them."""
        import docker.errors

        try:
            return self._create_and_start(host, ctx, role, name, command, image=image,
                                          nofile=nofile, sysctls=sysctls, ports=ports,
                                          security_opt=security_opt, files=files, **extra)
        except docker.errors.APIError as exc:
            why = exc.explanation if isinstance(exc.explanation, str) else str(exc)
            raise BackendError(f"Docker on host {host} could not start {role} "
                               f"iolab-{ctx.run_id}-{name}: {why}") from exc
        except (docker.errors.DockerException, OSError) as exc:  # refused, reset, timed out
            raise unreachable(host, self.daemons.endpoint(host), exc) from exc

    def _create_and_start(self, host, ctx, role, name, command, *, image, nofile, sysctls,
                          ports, security_opt, files, **extra):
        from docker.types import Ulimit

        self._run_ids.add(ctx.run_id)
        client = self.daemons.clients[host]
        network = self.daemons.network(host, ctx)
        container = client.containers.create(
            image or self.image(), command, name=f"iolab-{ctx.run_id}-{name}",
            labels={LABEL: "1", "iolab.run": ctx.run_id, "iolab.role": role,
                    "iolab.host": host, OWNER_LABEL: self.owner},
            network=network.name, init=True, detach=True,
            ulimits=[Ulimit(name="nofile", soft=nofile, hard=nofile)],
            sysctls=sysctls or {}, ports=ports or {}, cap_drop=["ALL"],
            security_opt=["no-new-privileges", *security_opt], **extra)
        with self._lock:
            self._containers.append((ctx.logs_dir / f"{container.name}.log", container))
        if files:  # copied in before start: works on remote daemons, unlike bind mounts
            container.put_archive(WORKDIR_PARENT, files)
        container.start()
        return container

    def _cross_daemon(self, host: str, others: list[str]) -> bool:
        return any(self.daemons.daemon(o) != self.daemons.daemon(host) for o in others)

    def _published_address(self, host: str) -> str:
        """``host``'s address for cross-host traffic, refused outside the safe
        ranges unless the scenario allows external targets."""
        address = self.scenario.host(host).address
        if not is_safe_target(address) and not self.scenario.allow_external_targets:
            raise BackendError(
                f"host {host}: load would go to {address}, outside 127.0.0.0/8 and "
                "198.18.0.0/15; set allow_external_targets: true if that host is yours")
        return address

    def _env(self) -> dict[str, str]:
        return {ALLOW_EXTERNAL_TARGETS: "1"} if self.scenario.allow_external_targets else {}

    def _lab_tab_mounts(self, host: str, ctx: RunContext, ui: bool) -> dict[str, Any]:
        """The web UI's Lab tab tails the server event files the run loop keeps
        in ``logs/`` (``ctx.server_events``, passed to the master as
        ``IOLAB_SERVER_EVENTS``). A master on this
        machine's daemon sees them through a read-only bind mount at the same
        path; a remote daemon cannot, and its Lab tab stays empty."""
        env = self._env()
        events = os.pathsep.join(str(p) for p in ctx.server_events) if ui else None
        if not events or host not in self.daemons.here():
            return {"environment": env}
        logs = str(ctx.logs_dir.resolve())
        return {"environment": {**env, SERVER_EVENTS: events},
                "volumes": {logs: {"bind": logs, "mode": "ro"}}}

    def _worker_plan(self) -> tuple[list[str], int]:
        """(the hosts workers go on, round-robin; how many workers)."""
        worker_hosts = list(self.scenario.placement.workers) or [self.scenario.placement.master]
        wnofile = self.daemons.nofile_for(worker_hosts[0], "max")
        return worker_hosts, workers_needed(self.scenario.load, wnofile, hosts=len(worker_hosts))

    def _load_hosts(self) -> list[str]:
        return [self.scenario.placement.master, *self.scenario.placement.workers]

    def start_server(self, spec: ServerSpec, ctx: RunContext) -> ServerHandle:
        host = spec.host
        port = spec.port if spec.is_custom and spec.port else SERVER_PORT
        nofile = self.daemons.nofile_for(host, spec.limits.nofile)
        publish = self._cross_daemon(host, self._load_hosts())
        ports = {}
        if publish:  # one host port per worker: see the module's docstring
            bindings = min(MAX_SERVER_BINDINGS, max(1, self._worker_plan()[1]))
            ports = {f"{port}/tcp": [(self._published_address(host), None)] * bindings}
        extra = server_options(spec, self.scenario.source_path)
        count = processes(spec, nofile, self.scenario.max_connections)
        shown = f", {count} processes" if count > 1 else ""
        self.progress(f"docker: starting server {spec.name} on {host} (nofile {nofile}{shown})")
        container = self._run(host, ctx, "server", f"server-{spec.name}-{next(self._names)}",
                              server_command(spec, python="python", host="0.0.0.0", port=port,
                                             nofile="max",  # the ulimit is the limit
                                             processes=count),
                              image=spec.image,
                              nofile=nofile, ports=ports, **extra)
        follower = LogFollower(container, ctx.logs_dir / f"{container.name}.log")
        follower.start()
        try:
            ready = self._wait_ready(spec, container, follower, port, nofile)
        except BackendError:
            # Stop it now, so the next model is not measured beside a server
            # still starting; cleanup() keeps its log and removes it.
            stop_quietly(container, 2)
            raise
        targets: list[int] = []
        if publish:
            targets = published_ports(container, port)
            target = (self.scenario.host(host).address, targets[0])
        else:
            target = (container_ip(container, self.daemons.network(host, ctx).name), port)
        handle = DockerServerHandle(spec, container, follower, target[0], target[1], ready)
        handle.target_ports = targets
        return handle

    def _wait_ready(self, spec, container, follower, port, nofile) -> dict[str, Any]:
        """Until READY, the container's exit, or the deadline (then: log tail)."""
        deadline = time.monotonic() + READY_TIMEOUT_S
        while time.monotonic() < deadline:
            if follower.ready_event.wait(timeout=0.5) and follower.ready:
                return follower.ready
            code = exit_code_of(container)
            if code is not None:
                follower.join(timeout=5)
                raise BackendError(f"server {spec.name} exited with {code} before READY; "
                                   f"log tail:\n{follower.tail(30)}")
            if spec.is_custom and self._port_open(container, port):
                return {"host": "0.0.0.0", "port": port, "model": spec.name, "pid": None,
                        "nofile": nofile}
        raise BackendError(f"server {spec.name} printed no READY line in "
                           f"{READY_TIMEOUT_S:.0f} s; log tail:\n{follower.tail(30)}")

    @staticmethod
    def _port_open(container, port: int) -> bool:
        """A custom server without a READY line: is its port accepting (from here)?"""
        container.reload()
        for net in container.attrs["NetworkSettings"]["Networks"].values():
            try:
                with socket.create_connection((net["IPAddress"], port), timeout=0.5):
                    return True
            except OSError:
                continue
        return False

    def start_load(self, server: ServerHandle, ctx: RunContext, *,
                   ui: bool = False) -> LoadHandle:
        load = self.scenario.load
        mhost = self.scenario.placement.master
        worker_hosts, count = self._worker_plan()
        if count < len(worker_hosts):
            self.progress(f"docker: load.workers is {count}, so placement host(s) "
                          f"{', '.join(worker_hosts[count:])} get no worker")
        publish_master = self._cross_daemon(mhost, worker_hosts)
        ports: dict[str, Any] = {}
        if publish_master:
            ports[f"{locust_cmd.MASTER_PORT}/tcp"] = (self._published_address(mhost), None)
        if ui:  # run-lab --web-host/--web-port (set on the backend), else 127.0.0.1:8089
            web_host = getattr(self, "web_host", locust_cmd.WEB_HOST)
            ports[f"{locust_cmd.WEB_PORT}/tcp"] = (
                web_host, getattr(self, "web_port", locust_cmd.WEB_PORT))
        tag = f"{server.spec.name}-{next(self._names)}"
        cmd = locust_cmd.master_command(
            load, target_host=server.target_host, target_port=server.target_port,
            workers=count, step_results=STEPS_PATH, ui=ui, web_host="0.0.0.0")
        self.progress(f"docker: starting Locust master on {mhost} and {count} worker(s)")
        master = self._run(mhost, ctx, "master", f"master-{tag}", cmd,
                           nofile=self.daemons.nofile_for(mhost, "max"), ports=ports,
                           **self._lab_tab_mounts(mhost, ctx, ui))
        if publish_master:
            maddr = (self.scenario.host(mhost).address,
                     published_port(master, locust_cmd.MASTER_PORT))
        else:
            maddr = (container_ip(master, self.daemons.network(mhost, ctx).name),
                     locust_cmd.MASTER_PORT)
        # Each worker its own published port of the server (not with --ui: the
        # Lab tab switches the target's address, and a fixed port would stay).
        own_ports = [] if ui else list(getattr(server, "target_ports", None) or [])
        workers = []
        for i in range(count):
            host = worker_hosts[i % len(worker_hosts)]
            wcmd = locust_cmd.worker_command(
                load, master_host=maddr[0], master_port=maddr[1],
                target_port=own_ports[i % len(own_ports)] if len(own_ports) > 1 else None)
            opts = worker_options(load, wcmd)  # load.network: tc on its eth0 first
            workers.append(self._run(host, ctx, "worker", f"worker-{tag}-{i + 1}",
                                     opts.pop("command"), **opts,
                                     nofile=self.daemons.nofile_for(host, "max"),
                                     sysctls=WORKER_SYSCTLS, environment=self._env()))
        sampler = StatsSampler(ctx.logs_dir / f"docker-stats-{tag}.jsonl")
        if isinstance(server, DockerServerHandle):
            sampler.watch("server", server.container)
        sampler.watch("master", master)
        for i, worker in enumerate(workers):
            sampler.watch(f"worker-{i + 1}", worker)
        sampler.start()
        self._samplers.append(sampler)
        web = f"http://127.0.0.1:{published_port(master, locust_cmd.WEB_PORT)}" if ui else None
        handle = DockerLoadHandle(master, workers, STEPS_PATH, ctx.logs_dir, web_url=web)
        handle.worker_addresses = [
            container_ip(w, self.daemons.network_name(w.labels["iolab.host"], ctx))
            for w in workers]
        return handle

    # ---- teardown --------------------------------------------------------------
    def cleanup(self) -> list[str]:
        """Stop samplers and containers, then keep their logs, then remove the
        containers and networks, then sweep every daemon by run label.
        Idempotent; every item is attempted whatever the one before raised
        (an API error, a timeout, a full disk while saving a log). Returns the
        problems met, one line each."""
        from lab.backends.docker.handles import save_logs

        problems: list[str] = []
        with self._lock:
            samplers, self._samplers = self._samplers, []
            containers, self._containers = self._containers, []
            networks = self.daemons.take_networks()
        gone: set[str] = set()  # hosts whose daemon stopped answering: tried once, said once
        on = self.daemons.on_host(gone)
        for sampler in samplers:
            attempt("stopping a stats sampler", sampler.stop, problems)
        for _, container in containers:  # stop first: nothing more is written, logs complete
            attempt(f"stopping {container.name}", on(container, lambda c=container: c.kill()),
                    problems)
        for logfile, container in containers:
            if not logfile.exists():
                attempt(f"saving {logfile}",
                        on(container, lambda c=container, f=logfile: save_logs(c, f)), problems)
        for _, container in containers:
            attempt(f"removing {container.name}",
                    on(container, lambda c=container: c.remove(force=True, v=True)), problems)
        self.daemons.remove_networks(networks, problems, on)
        self.daemons.remove_by_label(self._run_ids, problems, on)
        self.daemons.close(problems)
        return [p for p in problems if not _already_gone(p)]

    def __enter__(self) -> DockerBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def _already_gone(problem: str) -> bool:
    """A container that exited already cannot be killed (409), one removed by
    a parallel path is not found (404): not problems of the teardown."""
    return any(s in problem for s in ("is not running", "No such container", "404 Client Error",
                                      "409 Client Error"))
