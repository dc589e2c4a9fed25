"""The daemons a run's hosts reach, and what the lab keeps per daemon.

Several host names may reach one Docker daemon (a unix socket and a tcp
port of one machine, say); which ones do is decided by a labelled marker
volume (``hosts.daemon_keys``), not by daemon IDs, which cloned daemons
share. Per daemon, not per host name, the lab reads the host's limits once
(a probe container in the lab image, ``hosts.host_facts``), creates one run
network (``network.py``) and, at the end, sweeps what carries the run's
label. A daemon that stops answering during teardown is named once, with
its host and endpoint; what the run left there stays until ``run-lab
clean`` reaches it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from contract.network import is_namespaced_sysctl
from lab.backends.base import RunContext
from lab.backends.docker.hosts import (
    LABEL,
    clean_all,
    client_for,
    daemon_keys,
    host_facts,
    short_reason,
    this_machine,
    unanswered,
    unreachable,
    write_sysctl_privileged,
)
from lab.backends.docker.network import create_run_network, route_subnets
from lab.errors import BackendError
from lab.host.limits import apply_host_limits
from lab.owner import OWNER_LABEL
from lab.scenario.types import Scenario
from lab.teardown import attempt


class Daemons:
    """The Docker clients of a scenario's hosts and the per-daemon state:
    which hosts share a daemon, each daemon's facts, its run network."""

    def __init__(self, scenario: Scenario, clients: Mapping[str, Any] | None,
                 progress: Callable[[str], None], image: Callable[[], str], owner: str, *,
                 isolate_hosts: bool = False):
        """``clients``: host name -> docker client (default: one per scenario host
        endpoint). ``image``: the lab image, ensured when first asked (the facts
        probe runs in it). ``isolate_hosts``: every host name its own daemon."""
        self.scenario = scenario
        self.owner = owner  # labels every network: clean spares live runs
        # Clients made here are ours to close (close()); passed-in ones are not.
        self._own_clients = clients is None
        self.clients = dict(clients) if clients is not None else {
            h.name: client_for(h.endpoint, host=h.name) for h in scenario.hosts}
        missing = {s.host for s in scenario.servers} | {scenario.placement.master} | set(
            scenario.placement.workers)
        missing -= set(self.clients)
        if missing:
            raise BackendError(f"no Docker client for host(s) {sorted(missing)}")
        self.progress, self.image = progress, image
        self.isolate_hosts = isolate_hosts
        self._daemons: dict[str, str] = {}
        self._here: set[str] | None = None  # hosts on this machine's daemon (here())
        self._facts: dict[str, dict[str, Any]] = {}
        self._networks: dict[str, Any] = {}  # daemon id -> network
        self._lock = threading.RLock()

    def endpoint(self, host: str) -> str:
        try:
            return self.scenario.host(host).endpoint
        except KeyError:
            return "local"

    def daemon(self, host: str) -> str:
        """Which daemon ``host`` reaches (hosts on one daemon share a key; one
        network, one set of facts per daemon), decided by a labelled marker,
        not by daemon IDs, which cloned daemons share (hosts.daemon_keys)."""
        if not self._daemons:
            self._check_reachable()
            self._daemons = ({h: h for h in self.clients} if self.isolate_hosts
                             else daemon_keys(self.clients))
        return self._daemons[host]

    def here(self) -> set[str]:
        """The hosts on this machine's daemon, by the marker test
        (hosts.this_machine), decided once: where the image is built, which
        runs avoid this machine's routes, where the Lab tab's bind mount works."""
        if self._here is None:
            self._here = this_machine(self.clients,
                                      {h: self.endpoint(h) for h in self.clients})
        return self._here

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
                    raise unreachable(host, self.endpoint(host), exc) from exc
                if not isinstance(exc, (OSError, docker.errors.DockerException)):
                    raise
                raise BackendError(f"host {host}: pinging the Docker daemon at "
                                   f"{self.endpoint(host)} failed: {type(exc).__name__}: "
                                   f"{short_reason(exc)}") from exc

    def checks(self, containers: Callable[[], list]) -> dict[str, Callable[[float], Any]]:
        """The host watch's check per host of the run (lab/run/hostwatch.py):
        its daemon's ``/_ping`` within ``timeout``, then the run's containers
        there (``containers()``) that are paused — a frozen worker neither
        loads nor answers its master, while its daemon answers. None: fine;
        else what was seen (with the paused container's role: the rest of
        that host is fine)."""
        used = {s.host for s in self.scenario.servers} | {self.scenario.placement.master} | set(
            self.scenario.placement.workers)

        import docker.errors

        def check(host: str, timeout: float) -> str | None:
            api = self.clients[host].api
            try:
                api._raise_for_status(api.get(api._url("/_ping"), timeout=timeout))
            except Exception as exc:  # noqa: BLE001 - which ones: unanswered()
                if not unanswered(exc):
                    raise
                return f"its Docker daemon at {self.endpoint(host)} did not answer: " \
                       f"{short_reason(exc)}"
            for container in containers():
                if container.labels.get("iolab.host") != host:
                    continue
                url = api._url("/containers/{0}/json", container.id)
                try:
                    state = api._result(api.get(url, timeout=timeout), json=True)["State"]
                except docker.errors.APIError:  # the daemon answered: gone is a lost worker's
                    continue
                if state.get("Paused"):
                    role = container.labels.get("iolab.role", "?")
                    return f"{role} container {container.name} is paused", frozenset({role})
            return None

        return {h: (lambda timeout, h=h: check(h, timeout)) for h in self.clients if h in used}

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
                raise unreachable(host, self.endpoint(host), exc) from exc
        return self._facts[key]

    def nofile_for(self, host: str, wanted: int | str) -> int:
        grantable = int(self.facts(host)["nofile_max_grantable"])
        return grantable if wanted == "max" else min(int(wanted), grantable)

    def describe(self) -> dict[str, Any]:
        """Each host's endpoint and its daemon's facts (run.json's ``hosts``)."""
        return {h: {"endpoint": self.endpoint(h), **self.facts(h)} for h in self.clients}

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
                if not is_namespaced_sysctl(key):
                    notes.append(f"{spec.name}: sysctl {key} is host-global, not per "
                                 "container; Docker refuses it, so it is left out")
            if spec.is_custom and not spec.image and scenario.source_path is None:
                notes.append(f"{spec.name}: no image and no scenario directory to copy in; "
                             "its command runs in the lab image as it is")
        return notes

    def network_name(self, host: str, ctx: RunContext) -> str:
        return f"iolab-{ctx.run_id}" + (f"-{host}" if self.isolate_hosts else "")

    def network(self, host: str, ctx: RunContext):
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
                    raise unreachable(host, self.endpoint(host), exc) from exc
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

    def take_networks(self) -> dict[str, Any]:
        """The run networks created so far (daemon key -> network), forgotten here."""
        with self._lock:
            networks, self._networks = self._networks, {}
        return networks

    def remove_networks(self, networks: dict[str, Any], problems: list[str], on) -> None:
        for key, network in networks.items():
            host = next((h for h in self.clients if self._daemons.get(h, h) == key), key)
            attempt(f"removing network {network.name}", on(host, network.remove), problems)

    def on_host(self, gone: set[str]):
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
                    raise BackendError(f"{unreachable(host, self.endpoint(host), exc)}; what "
                                       "this run left there stays until, with the host "
                                       f"back, `{self.clean_command()}` removes it") from exc
            return guarded
        return on

    def clean_command(self) -> str:
        """The command that finishes a teardown a gone host interrupted."""
        source = self.scenario.source_path
        return f"run-lab clean --scenario {source}" if source else "run-lab clean"

    def remove_by_label(self, run_ids: set[str], problems: list[str], on=None) -> None:
        """Belt and braces: anything of this run's that bookkeeping missed, on every daemon."""
        on = on or self.on_host(set())
        hosts = {id(c): h for h, c in self.clients.items()}.values()  # one name per client
        for run_id in run_ids:
            for host in hosts:
                client = self.clients[host]
                attempt(f"sweeping label iolab.run={run_id}",
                        on(host, lambda c=client, r=run_id: clean_all(c, label=f"iolab.run={r}")),
                        problems)

    def close(self, problems: list[str]) -> None:
        """Close the clients made here: their connection pools must not outlive the run."""
        if self._own_clients:
            self._own_clients = False
            for client in {id(c): c for c in self.clients.values()}.values():
                attempt("closing a Docker client", client.close, problems)
