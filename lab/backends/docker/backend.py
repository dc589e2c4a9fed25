"""The Docker backend: servers and Locust as containers, on one or many hosts.

Per run and per daemon there is one bridge network ``iolab-<run>`` in
198.18.0.0/15 (``lab/backends/docker/network.py``). Every container is labelled
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

from contract.env import SERVER_EVENTS
from lab.backends import locust_cmd
from lab.backends.base import Backend, LoadHandle, RunContext, ServerHandle
from lab.backends.docker.container_io import LogFollower, StatsSampler
from lab.backends.docker.handles import (
    DockerLoadHandle,
    DockerServerHandle,
    exit_code_of,
    stop_quietly,
)
from lab.backends.docker.hosts import (
    LABEL,
    clean_all,
    client_for,
    daemon_keys,
    docker_available,
    host_facts,
    short_reason,
    this_machine,
    unanswered,
    unreachable,
    write_sysctl_privileged,
)
from lab.backends.docker.images import ensure_image
from lab.backends.docker.network import (
    container_ip,
    create_run_network,
    published_port,
    published_ports,
    route_subnets,
)
from lab.backends.docker.specs import (
    ALLOW_EXTERNAL_ENV,
    SERVER_PORT,
    WORKDIR_PARENT,
    namespaced,
    safe_target,
    server_options,
)
from lab.backends.server_cmd import processes, server_command
from lab.backends.workers import workers_needed
from lab.errors import BackendError
from lab.host.limits import apply_host_limits
from lab.owner import OWNER_LABEL, owner_id
from lab.scenario.types import Scenario, ServerSpec
from lab.teardown import attempt

__all__ = ["DockerBackend", "clean_all", "docker_available"]

READY_TIMEOUT_S = 60.0
LAB_TAB_ENV = SERVER_EVENTS  # read by loadgen/lab_tab.py
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
        # Clients this backend made are its own to close (cleanup); passed-in ones are not.
        self._own_clients = clients is None
        self.clients = dict(clients) if clients is not None else {
            h.name: client_for(h.endpoint, host=h.name) for h in scenario.hosts}
        missing = {s.host for s in scenario.servers} | {scenario.placement.master} | set(
            scenario.placement.workers)
        missing -= set(self.clients)
        if missing:
            raise BackendError(f"no Docker client for host(s) {sorted(missing)}")
        self.progress = progress or (lambda _msg: None)
        self._image = image
        self.isolate_hosts = isolate_hosts
        self._daemons: dict[str, str] = {}
        self._here: set[str] | None = None  # hosts on this machine's daemon (here())
        self._facts: dict[str, dict[str, Any]] = {}
        self._networks: dict[str, Any] = {}  # daemon id -> network
        self._containers: list[tuple[Path, Any]] = []  # (log file, container)
        self._samplers: list[StatsSampler] = []
        self._run_ids: set[str] = set()
        self._names = itertools.count(1)
        self._lock = threading.RLock()

    # ---- hosts ---------------------------------------------------------------
    def image(self) -> str:
        if self._image is None:
            # Build where this machine's daemon is (the offline base needs
            # debootstrap and `docker import` here), found by the marker test:
            # a unix:// socket may be another daemon. The others get a copy.
            here = self.here()
            ordered = {h: self.clients[h]
                       for h in sorted(self.clients, key=lambda h: h not in here)}
            self._image = ensure_image(ordered, self.progress)
        return self._image

    def here(self) -> set[str]:
        """The hosts on this machine's daemon, by the marker test
        (hosts.this_machine), decided once: where the image is built, which
        runs avoid this machine's routes, where the Lab tab's bind mount works."""
        if self._here is None:
            self._here = this_machine(self.clients,
                                      {h: self._endpoint(h) for h in self.clients})
        return self._here

    def daemon(self, host: str) -> str:
        """Which daemon ``host`` reaches (hosts on one daemon share a key; one
        network, one set of facts per daemon), decided by a labelled marker,
        not by daemon IDs, which cloned daemons share (hosts.daemon_keys)."""
        if not self._daemons:
            self._check_reachable()
            self._daemons = ({h: h for h in self.clients} if self.isolate_hosts
                             else daemon_keys(self.clients))
        return self._daemons[host]

    def _check_reachable(self) -> None:
        """Every host's daemon answers, before anything is created; else one
        BackendError naming the host and its endpoint. Only a connection
        failure is a daemon that does not answer (hosts.unanswered); an error
        the daemon answered with, or a local one on the way, is named as what
        it is."""
        import docker.errors

        for host, client in self.clients.items():
            try:
                client.ping()
            except Exception as exc:  # noqa: BLE001 - which ones: unanswered()
                if unanswered(exc):
                    raise unreachable(host, self._endpoint(host), exc) from exc
                if not isinstance(exc, (OSError, docker.errors.DockerException)):
                    raise
                raise BackendError(f"host {host}: pinging the Docker daemon at "
                                   f"{self._endpoint(host)} failed: {type(exc).__name__}: "
                                   f"{short_reason(exc)}") from exc

    def facts(self, host: str) -> dict[str, Any]:
        """Limits and metadata of ``host``'s daemon, read once per daemon."""
        key = self.daemon(host)
        if key not in self._facts:
            self.progress(f"docker: reading limits on host {host}")
            image = self.image()
            try:
                self._facts[key] = host_facts(self.clients[host], image)
            except Exception as exc:  # noqa: BLE001 - which ones: unanswered()
                if not unanswered(exc):
                    raise
                raise unreachable(host, self._endpoint(host), exc) from exc
        return self._facts[key]

    def nofile_for(self, host: str, wanted: int | str) -> int:
        grantable = int(self.facts(host)["nofile_max_grantable"])
        return grantable if wanted == "max" else min(int(wanted), grantable)

    def describe_hosts(self) -> dict[str, Any]:
        return {h: {"endpoint": self._endpoint(h), **self.facts(h)} for h in self.clients}

    def _endpoint(self, host: str) -> str:
        try:
            return self.scenario.host(host).endpoint
        except KeyError:
            return "local"

    def unapplied_settings(self, scenario: Scenario) -> list[str]:
        notes: list[str] = []
        for host in self.clients:
            writer = None
            if scenario.host_limits.raise_host_limits:
                def writer(name, value, _host=host):
                    write_sysctl_privileged(self.clients[_host], self.image(), name, value)
                    self._facts.pop(self.daemon(_host), None)  # re-read for run.json
            notes += apply_host_limits(host, scenario.host_limits, self.facts(host), writer)
        for spec in scenario.servers:
            grantable = self.facts(spec.host)["nofile_max_grantable"]
            if spec.limits.nofile != "max" and int(spec.limits.nofile) > grantable:
                notes.append(f"{spec.name}: nofile {spec.limits.nofile} asked, but Docker on "
                             f"host {spec.host} grants at most {grantable}; capped")
            for key, _value in spec.limits.sysctls:
                if not namespaced(key):
                    notes.append(f"{spec.name}: sysctl {key} is host-global, not per "
                                 "container; Docker refuses it, so it is left out")
            if spec.is_custom and not spec.image and scenario.source_path is None:
                notes.append(f"{spec.name}: no image and no scenario directory to copy in; "
                             "its command runs in the lab image as it is")
        return notes

    # ---- containers ------------------------------------------------------------
    def network_name(self, host: str, ctx: RunContext) -> str:
        return f"iolab-{ctx.run_id}" + (f"-{host}" if self.isolate_hosts else "")

    def _network(self, host: str, ctx: RunContext):
        key = self.daemon(host)
        with self._lock:
            if key not in self._networks:
                try:
                    self._networks[key] = create_run_network(
                        self.clients[host], self.network_name(host, ctx), ctx.run_id,
                        {LABEL: "1", "iolab.run": ctx.run_id, OWNER_LABEL: self.owner},
                        avoid=self._avoid(host))
                except Exception as exc:  # noqa: BLE001 - which ones: unanswered()
                    if not unanswered(exc):
                        raise
                    raise unreachable(host, self._endpoint(host), exc) from exc
            return self._networks[key]

    def _avoid(self, host: str) -> tuple:
        """Subnets a run network on ``host`` must not overlap: every scenario
        host's address (how hosts reach each other) and, for this machine's
        daemon, the subnets this machine routes."""
        import ipaddress

        nets = []
        for h in self.scenario.hosts:
            try:
                nets.append(ipaddress.ip_network(h.address, strict=False))
            except ValueError:  # a name, not an address: nothing to compare
                continue
        if host in self.here():
            nets += route_subnets()
        return tuple(nets)

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
            raise unreachable(host, self._endpoint(host), exc) from exc

    def _create_and_start(self, host, ctx, role, name, command, *, image, nofile, sysctls,
                          ports, security_opt, files, **extra):
        from docker.types import Ulimit

        self._run_ids.add(ctx.run_id)
        client = self.clients[host]
        network = self._network(host, ctx)
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
        return any(self.daemon(o) != self.daemon(host) for o in others)

    def _published_address(self, host: str) -> str:
        """``host``'s address for cross-host traffic, refused outside the safe
        ranges unless the scenario allows external targets."""
        address = self.scenario.host(host).address
        if not safe_target(address) and not self.scenario.allow_external_targets:
            raise BackendError(
                f"host {host}: load would go to {address}, outside 127.0.0.0/8 and "
                "198.18.0.0/15; set allow_external_targets: true if that host is yours")
        return address

    def _env(self) -> dict[str, str]:
        return {ALLOW_EXTERNAL_ENV: "1"} if self.scenario.allow_external_targets else {}

    def _lab_tab_mounts(self, host: str, ctx: RunContext, ui: bool) -> dict[str, Any]:
        """The web UI's Lab tab tails the server event files the run loop keeps
        in ``logs/`` (``ctx.server_events``, passed to the master as
        ``IOLAB_SERVER_EVENTS``). A master on this
        machine's daemon sees them through a read-only bind mount at the same
        path; a remote daemon cannot, and its Lab tab stays empty."""
        env = self._env()
        events = os.pathsep.join(str(p) for p in ctx.server_events) if ui else None
        if not events or host not in self.here():
            return {"environment": env}
        logs = str(ctx.logs_dir.resolve())
        return {"environment": {**env, LAB_TAB_ENV: events},
                "volumes": {logs: {"bind": logs, "mode": "ro"}}}

    def _worker_plan(self) -> tuple[list[str], int]:
        """(the hosts workers go on, round-robin; how many workers)."""
        worker_hosts = list(self.scenario.placement.workers) or [self.scenario.placement.master]
        wnofile = self.nofile_for(worker_hosts[0], "max")
        return worker_hosts, workers_needed(self.scenario.load, wnofile, hosts=len(worker_hosts))

    def _load_hosts(self) -> list[str]:
        return [self.scenario.placement.master, *self.scenario.placement.workers]

    def start_server(self, spec: ServerSpec, ctx: RunContext) -> ServerHandle:
        host = spec.host
        port = spec.port if spec.is_custom and spec.port else SERVER_PORT
        nofile = self.nofile_for(host, spec.limits.nofile)
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
            target = (container_ip(container, self._network(host, ctx).name), port)
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
                           nofile=self.nofile_for(mhost, "max"), ports=ports,
                           **self._lab_tab_mounts(mhost, ctx, ui))
        if publish_master:
            maddr = (self.scenario.host(mhost).address,
                     published_port(master, locust_cmd.MASTER_PORT))
        else:
            maddr = (container_ip(master, self._network(mhost, ctx).name), locust_cmd.MASTER_PORT)
        # Each worker its own published port of the server (not with --ui: the
        # Lab tab switches the target's address, and a fixed port would stay).
        own_ports = [] if ui else list(getattr(server, "target_ports", None) or [])
        workers = []
        for i in range(count):
            host = worker_hosts[i % len(worker_hosts)]
            wcmd = locust_cmd.worker_command(
                load, master_host=maddr[0], master_port=maddr[1],
                target_port=own_ports[i % len(own_ports)] if len(own_ports) > 1 else None)
            workers.append(self._run(host, ctx, "worker", f"worker-{tag}-{i + 1}", wcmd,
                                     nofile=self.nofile_for(host, "max"),
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
            container_ip(w, self.network_name(w.labels["iolab.host"], ctx)) for w in workers]
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
            networks, self._networks = self._networks, {}
        gone: set[str] = set()  # hosts whose daemon stopped answering: tried once, said once
        on = self._on_host(gone)
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
        for key, network in networks.items():
            host = next((h for h in self.clients if self._daemons.get(h, h) == key), key)
            attempt(f"removing network {network.name}", on(host, network.remove), problems)
        self._remove_by_label(problems, on)
        if self._own_clients:  # their connection pools must not outlive the run
            self._own_clients = False
            for client in {id(c): c for c in self.clients.values()}.values():
                attempt("closing a Docker client", client.close, problems)
        return [p for p in problems if not _already_gone(p)]

    def _on_host(self, gone: set[str]):
        """``on(host or container, action)``: the action, unless that host's
        daemon stopped answering earlier in this teardown. The first time it
        does not answer is one line naming the host and endpoint; its
        containers stay there until ``run-lab clean`` reaches it."""
        def on(where, action):
            host = where if isinstance(where, str) else where.labels.get("iolab.host", "?")

            def guarded():
                if host in gone:
                    return None
                try:
                    return action()
                except Exception as exc:  # noqa: BLE001 - which ones: unanswered()
                    if not unanswered(exc):
                        raise  # the daemon answered: a real refusal, reported as it is
                    gone.add(host)
                    raise BackendError(f"{unreachable(host, self._endpoint(host), exc)}; what "
                                       "this run left there stays until `run-lab clean` "
                                       "reaches it") from exc
            return guarded
        return on

    def _remove_by_label(self, problems: list[str], on=None) -> None:
        """Belt and braces: anything of this run's that bookkeeping missed, on every daemon."""
        on = on or self._on_host(set())
        hosts = {id(c): h for h, c in self.clients.items()}.values()  # one name per client
        for run_id in self._run_ids:
            for host in hosts:
                client = self.clients[host]
                attempt(f"sweeping label iolab.run={run_id}",
                        on(host, lambda c=client, r=run_id: clean_all(c, label=f"iolab.run={r}")),
                        problems)

    def __enter__(self) -> DockerBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def _already_gone(problem: str) -> bool:
    """A container that exited already cannot be killed (409), one removed by
    a parallel path is not found (404): not problems of the teardown."""
    return any(s in problem for s in ("is not running", "No such container", "404 Client Error",
                                      "409 Client Error"))
