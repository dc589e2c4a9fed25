"""``run-lab doctor [SCENARIO]``: what this host lets the lab do, before a run.

It reads the limits that decide where each I/O model stops (open files per
process, the system file table, source ports, the accept-queue cap, pids and
threads, memory), says whether Docker answers, and, given a scenario, the
largest connection count each server could reach here and which limit binds
first. The numbers are ceilings from arithmetic, not measurements: a run
finds the real wall.
"""

from __future__ import annotations

from typing import Any

from contract.fds import LOADGEN_FD_RESERVE
from contract.limits import EADDRNOTAVAIL, EMFILE
from lab.host import ceiling
from lab.host.ceiling import Ceiling
from lab.host.facts import HostFacts, local_host_facts
from lab.host.workers import per_worker_ceiling, workers_needed
from lab.scenario.types import Scenario, ServerSpec

SOURCE_IPS_PER_LOCAL_WORKER = 2  # lab/backends/local.py gives each worker two 127.0.0.x

Facts = HostFacts | dict[str, Any]


def _facts(facts: Facts) -> HostFacts:
    return facts if isinstance(facts, HostFacts) else HostFacts.from_record(facts)


def server_ceilings(spec: ServerSpec, facts: Facts, backend: str = "local",
                    top: int = 0) -> list[Ceiling]:
    """Every limit that caps how many connections ``spec`` can hold here
    (lab/host/ceiling.py; load and servers share this host on either backend).
    ``top``: the scenario's top step, which ``processes: auto`` is sized for."""
    host = _facts(facts)
    nofile = spec.limits.nofile
    processes = ceiling.processes_for(spec.processes, spec.model,
                                      ceiling.effective_nofile(nofile, host), top)
    return ceiling.server_ceilings(spec.model, nofile, host, backlog=spec.limits.backlog,
                                   load_on_host=True, processes=processes)


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
                       f"{LOADGEN_FD_RESERVE})")
    return Ceiling(ports, EADDRNOTAVAIL, f"{workers} worker(s) x {ips} source address(es) x "
                                         f"{host.ephemeral_ports} ports")


def memory_refusals(scenario: Scenario, facts: Facts) -> list[str]:
    """Servers whose top step cannot fit in this host's available memory
    (lab/host/ceiling.py ``memory_shortfall``), for a scenario whose hosts
    are all this machine (load and server share its memory). A server with
    ``limits.memory`` is left alone: its limit is the experiment, and its
    OOM kill stays inside its cgroup."""
    if any(h.endpoint != "local" for h in scenario.hosts):
        return []
    host = _facts(facts)
    found = (ceiling.memory_shortfall(spec.model, spec.name, scenario.max_connections,
                                      host.mem_available_bytes)
             for spec in scenario.servers if not spec.limits.memory)
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


def scenario_lines(scenario: Scenario, facts: HostFacts, backend: str) -> list[str]:
    top = scenario.max_connections
    load = load_ceiling(scenario, facts, backend)
    lines = [f"scenario {scenario.name} ({len(scenario.servers)} servers, top step {top}), "
             f"{backend} backend:"]
    for spec in scenario.servers:
        binding = ceiling.binding(server_ceilings(spec, facts, backend, top) + [load])
        verdict = "reaches the top step" if binding.connections >= top else \
            f"stops before the top step ({top})"
        lines.append(f"  {spec.name:<12} up to ~{binding.connections:<7} {binding.limit}: "
                     f"{binding.why}; {verdict}")
    lines.append(f"  {'load':<12} up to ~{load.connections:<7} {load.limit}: {load.why}")
    return lines


def doctor_text(scenario: Scenario | None, docker: tuple[bool, str],
                backends: tuple[str, ...] = ("local", "docker"),
                facts: Facts | None = None) -> str:
    """The whole doctor report as text."""
    facts = _facts(facts) if facts is not None else local_host_facts()
    lines = ["this host:", *host_lines(facts, docker)]
    if scenario is not None:
        for backend in backends:
            lines += ["", *scenario_lines(scenario, facts, backend)]
            if backend == "docker":
                lines.append("  (Docker: containers get --ulimit nofile up to what the daemon "
                             "can grant; namespaced sysctls apply per container)")
        lines += [f"run-lab refuses this scenario here: {why}"
                  for why in memory_refusals(scenario, facts)]
    return "\n".join(lines) + "\n"
