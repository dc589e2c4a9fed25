"""``run-lab doctor [SCENARIO]``: what this host lets the lab do, before a run.

It reads the limits that decide where each I/O model stops (open files per
process, the system file table, source ports, the accept-queue cap, pids and
threads, memory), says whether Docker answers, and, given a scenario, the
largest connection count each server could reach here and which limit binds
first. The numbers are ceilings from arithmetic, not measurements: a run
finds the real wall.

Two figures per server. *This scenario*: the connections its top step can
reach with the processes and workers it asks for (``processes: N``,
``workers: N``) or that ``auto`` sizes for the top step. *This host*: the
most the same server shape could hold here if the top step were raised and
``auto`` grew with it, and the resource that binds: the whole lab's memory
(load, servers, kernel sockets: :func:`lab.host.ceiling.lab_memory`), one
process's descriptors (a fixed ``processes``/``workers``), the local
backend's loopback source addresses (each worker two 127.0.0.x), the system
file table, and the connection-tracking table: when netfilter's conntrack is
loaded (Docker's NAT rules load it) every TCP connection, loopback ones
included, takes an entry, and once ``nf_conntrack_max`` entries exist the
kernel drops new SYNs ("nf_conntrack: table full, dropping packet"): the
client sees slow connects, then timeouts. A top step whose whole-lab memory exceeds MemAvailable is
refused before anything starts (:func:`memory_refusals`).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from contract.fds import LOADGEN_FD_RESERVE
from contract.limits import EADDRNOTAVAIL, EMFILE, ENFILE, ENOMEM
from lab.host import ceiling
from lab.host.ceiling import Ceiling, LabMemory
from lab.host.facts import HostFacts, local_host_facts
from lab.host.workers import (
    PER_WORKER_COMFORT,
    per_worker_ceiling,
    user_rss_bytes,
    workers_needed,
)
from lab.scenario.types import LoadSpec, Scenario, ServerSpec, Step

SOURCE_IPS_PER_LOCAL_WORKER = 2  # lab/backends/local.py gives each worker two 127.0.0.x
# ... from 127.0.0.10 up to 127.0.0.254 (local.py source_ips)
LOCAL_WORKERS_MAX = (255 - 10) // SOURCE_IPS_PER_LOCAL_WORKER
HOST_MAX_SEARCH = 1 << 26  # connections: far beyond any one host
CONNTRACK_MAX = Path("/proc/sys/net/netfilter/nf_conntrack_max")  # absent: not loaded
CONNTRACK_LIMIT = "conntrack"  # the doctor's name for the table's wall (no errno: a drop)


def conntrack_max(path: Path = CONNTRACK_MAX) -> int | None:
    """This host's ``nf_conntrack_max``; None when conntrack is not loaded."""
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def conntrack_ceiling(entries: int | None) -> Ceiling | None:
    """Connections the conntrack table holds (one entry each), or None."""
    if not entries:
        return None
    return Ceiling(entries, CONNTRACK_LIMIT,
                   f"nf_conntrack_max {entries}: one entry per connection, loopback too; "
                   f"a full table drops new SYNs (raise it: sysctl -w "
                   f"net.netfilter.nf_conntrack_max=N)")

Facts = HostFacts | dict[str, Any]


def _facts(facts: Facts) -> HostFacts:
    return facts if isinstance(facts, HostFacts) else HostFacts.from_record(facts)


def server_ceilings(spec: ServerSpec, facts: Facts, backend: str = "local",
                    top: int = 0, load: LoadSpec | None = None) -> list[Ceiling]:
    """Every limit that caps how many connections ``spec`` can hold here
    (lab/host/ceiling.py; load and servers share this host on either backend).
    ``top``: the scenario's top step, which ``processes: auto`` is sized for;
    ``load``: the scenario's, whose users' memory counts (None: a live user's)."""
    host = _facts(facts)
    nofile = spec.limits.nofile
    processes = ceiling.processes_for(spec.processes, spec.model,
                                      ceiling.effective_nofile(nofile, host), top)
    return ceiling.server_ceilings(spec.model, nofile, host, backlog=spec.limits.backlog,
                                   load_on_host=True, processes=processes,
                                   user_bytes=user_rss_bytes(load))


def load_ceiling(scenario: Scenario, facts: Facts, backend: str) -> Ceiling:
    host = _facts(facts)
    hard = host.nofile_hard or 1024
    workers = workers_needed(scenario.load, hard)
    ips = SOURCE_IPS_PER_LOCAL_WORKER if backend == "local" else 1
    ports = workers * ips * host.ephemeral_ports
    per_worker = per_worker_ceiling(hard)
    if workers * per_worker <= ports:
        return Ceiling(workers * per_worker, EMFILE,
                       f"{workers} worker(s) x {per_worker} connections (nofile {hard} - "
                       f"{LOADGEN_FD_RESERVE}), at most {PER_WORKER_COMFORT} of them paced "
                       "(echo) users per worker")
    return Ceiling(ports, EADDRNOTAVAIL, f"{workers} worker(s) x {ips} source address(es) x "
                                         f"{host.ephemeral_ports} ports")


def sizes(spec: ServerSpec, scenario: Scenario, facts: Facts, connections: int
          ) -> tuple[int, int]:
    """(server processes, Locust workers) the lab uses when ``connections`` is
    the top step: ``auto`` sized for it, fixed numbers as given."""
    host = _facts(facts)
    processes = ceiling.processes_for(spec.processes, spec.model,
                                      ceiling.effective_nofile(spec.limits.nofile, host),
                                      connections)
    load = dataclasses.replace(scenario.load, steps=(Step(connections, 1.0),))
    return processes, workers_needed(load, host.nofile_hard or 1024)


def memory_at(spec: ServerSpec, scenario: Scenario, facts: Facts, connections: int
              ) -> LabMemory:
    """The whole lab's memory (load and server on this host) at ``connections``."""
    processes, workers = sizes(spec, scenario, facts, connections)
    return ceiling.lab_memory(spec.model, connections, processes=processes, workers=workers,
                              user_bytes=user_rss_bytes(scenario.load))


def memory_max(spec: ServerSpec, scenario: Scenario, facts: Facts) -> int | None:
    """The most connections whose whole-lab memory fits in MemAvailable (None:
    unknown). The cost grows with the connections and, by steps, with the
    processes ``auto`` adds, so the largest fit is found by bisection."""
    available = _facts(facts).mem_available_bytes
    if not available:
        return None
    lo, hi = 0, HOST_MAX_SEARCH
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if memory_at(spec, scenario, facts, mid).total <= available:
            lo = mid
        else:
            hi = mid - 1
    return lo


def host_ceilings(spec: ServerSpec, scenario: Scenario, facts: Facts, backend: str,
                  conntrack: int | None = None) -> list[Ceiling]:
    """What caps ``spec`` on this host if the top step grew (``auto`` with it);
    ``conntrack``: the host's ``nf_conntrack_max`` (None: not loaded)."""
    host = _facts(facts)
    found = [c for c in server_ceilings(spec, facts, backend, HOST_MAX_SEARCH, scenario.load)
             if c.limit != ENOMEM]  # the whole lab's memory replaces the server's alone
    most = memory_max(spec, scenario, facts)
    if most is not None:
        found.append(Ceiling(most, ENOMEM, f"the whole lab's memory at {most}: "
                                           f"{memory_at(spec, scenario, facts, most).words()}"
                                           f" of {ceiling._size(host.mem_available_bytes)}"
                                           " available"))
    hard = host.nofile_hard or 1024
    if scenario.load.workers is not None:
        found.append(load_ceiling(scenario, facts, backend))
    elif backend == "local":
        found.append(Ceiling(LOCAL_WORKERS_MAX * per_worker_ceiling(hard), EADDRNOTAVAIL,
                             f"{LOCAL_WORKERS_MAX} local workers (two 127.0.0.x each) x "
                             f"{per_worker_ceiling(hard)} users"))
    if host.file_max:
        found.append(Ceiling(host.file_max // 2, ENFILE, f"fs.file-max {host.file_max}: "
                                                          "client and server ends"))
    table = conntrack_ceiling(conntrack)
    return found + ([table] if table else [])


def memory_refusals(scenario: Scenario, facts: Facts) -> list[str]:
    """Servers whose top step cannot fit in this host's available memory: the
    whole lab's, load and server processes included (lab/host/ceiling.py
    ``memory_shortfall``), for a scenario whose hosts are all this machine
    (load and server share its memory). A server with ``limits.memory`` is
    left alone: its limit is the experiment, and its OOM kill stays inside
    its cgroup."""
    if any(h.endpoint != "local" for h in scenario.hosts):
        return []
    host = _facts(facts)
    top = scenario.max_connections
    found = []
    for spec in scenario.servers:
        if spec.limits.memory:
            continue
        processes, workers = sizes(spec, scenario, facts, top)
        found.append(ceiling.memory_shortfall(
            spec.model, spec.name, top, host.mem_available_bytes, processes=processes,
            workers=workers, fits=memory_max(spec, scenario, facts),
            user_bytes=user_rss_bytes(scenario.load)))
    return [why for why in found if why]


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


def host_lines(host: HostFacts, docker: tuple[bool, str]) -> list[str]:
    facts = host.to_record()
    file_nr = str(facts.get("file_nr") or "").split()
    nproc = "" if facts.get("nproc") is None else f", nproc {facts['nproc']}"
    rows = [
        ("open files (nofile)", f"soft {facts.get('nofile_soft')}, hard "
                                f"{facts.get('nofile_hard')} per process"),
        ("fs.file-max", f"{facts.get('file_max')} system-wide"
                        f"{f' ({file_nr[0]} in use)' if file_nr else ''}"),
        ("fs.nr_open", f"{facts.get('nr_open')} (ceiling for any nofile hard limit)"),
        ("port range", f"{' '.join(map(str, host.port_range or ()))} ({host.ephemeral_ports} "
                       "source ports per address and server)"),
        ("somaxconn", f"{facts.get('somaxconn')} (accept-queue cap)"),
        ("pid_max / threads-max", f"{facts.get('pid_max')} / {facts.get('threads_max')}{nproc}"),
        ("memory", f"{_gib(host.mem_bytes)} total, {_gib(host.mem_available_bytes)} "
                   "available"),
        ("CPUs", str(facts.get("cpus"))),
        ("Docker", docker[1] if docker[0] else f"not reachable: {docker[1]}"),
    ]
    return [f"  {key:<22} {value}" for key, value in rows]


def scenario_lines(scenario: Scenario, facts: HostFacts, backend: str,
                   conntrack: int | None = None) -> list[str]:
    top = scenario.max_connections
    table = conntrack_ceiling(conntrack)
    load = load_ceiling(scenario, facts, backend)
    lines = [f"scenario {scenario.name} ({len(scenario.servers)} servers, top step {top}), "
             f"{backend} backend:"]
    for spec in scenario.servers:
        binding = ceiling.binding(server_ceilings(spec, facts, backend, top, scenario.load)
                                  + [load]
                                  + ([table] if table else []))
        verdict = "reaches the top step" if binding.connections >= top else \
            f"stops before the top step ({top})"
        lines.append(f"  {spec.name:<12} up to ~{binding.connections:<7} {binding.limit}: "
                     f"{binding.why}; {verdict}")
        processes, workers = sizes(spec, scenario, facts, top)
        if backend == "local":
            lines.append(f"  {'':<12} top step {top}: {processes} server process(es), "
                         f"{workers} worker(s), memory "
                         f"{memory_at(spec, scenario, facts, top).words()}")
        most = ceiling.binding(host_ceilings(spec, scenario, facts, backend, conntrack))
        if most is not None:
            lines.append(f"  {'':<12} this host: up to ~{most.connections} if the top step "
                         f"grew; binds first: {most.limit}, {most.why}")
    lines.append(f"  {'load':<12} up to ~{load.connections:<7} {load.limit}: {load.why}")
    return lines


def doctor_text(scenario: Scenario | None, docker: tuple[bool, str],
                backends: tuple[str, ...] = ("local", "docker"),
                facts: Facts | None = None) -> str:
    """The whole doctor report as text."""
    local = facts is None
    facts = _facts(facts) if facts is not None else local_host_facts()
    table = conntrack_max() if local else None
    lines = ["this host:", *host_lines(facts, docker)]
    if local:
        lines.append(f"  {'nf_conntrack_max':<22} "
                     + (f"{table} (every connection one entry, loopback too)" if table
                        else "conntrack not loaded"))
    if scenario is not None:
        for backend in backends:
            lines += ["", *scenario_lines(scenario, facts, backend, table)]
            if backend == "docker":
                lines.append("  (Docker: containers get --ulimit nofile up to what the daemon "
                             "can grant; namespaced sysctls apply per container)")
        lines += [f"run-lab refuses this scenario here: {why}"
                  for why in memory_refusals(scenario, facts)]
    return "\n".join(lines) + "\n"
