"""``run-lab doctor [SCENARIO]``: what this host lets the lab do, before a run.

It reads the limits that decide where each I/O model stops (open files per
process, the system file table, source ports, the accept-queue cap, pids and
threads, memory), says whether Docker answers, and, given a scenario, the
largest connection count each server could reach here and which limit binds
first. The numbers are ceilings from arithmetic, not measurements: a run
finds the real wall.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from typing import Any

from contract.limits import FD_SETSIZE
from contract.network import DEFAULT_EPHEMERAL_PORTS
from lab.backends.workers import DESCRIPTOR_RESERVE, per_worker_ceiling, workers_needed
from lab.host.limits import read_host_limits
from lab.scenario.types import Scenario, ServerSpec

SERVER_FD_RESERVE = 8  # stdin/out/err, the listener, the poller, a log or two
SOURCE_IPS_PER_LOCAL_WORKER = 2  # lab/backends/local.py gives each worker two 127.0.0.x


@dataclass(frozen=True)
class Ceiling:
    connections: int
    limit: str  # vocabulary kind or a short name
    why: str


def meminfo(path: str = "/proc/meminfo") -> dict[str, int]:
    """``MemTotal``/``MemAvailable`` ... in bytes."""
    out = {}
    try:
        with open(path) as f:
            for line in f:
                key, _, rest = line.partition(":")
                fields = rest.split()
                if fields and fields[0].isdigit():
                    out[key] = int(fields[0]) * (1024 if fields[1:] == ["kB"] else 1)
    except OSError:
        pass
    return out


def host_facts() -> dict[str, Any]:
    facts: dict[str, Any] = dict(read_host_limits())
    mem = meminfo()
    nproc_soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    facts.update(mem_total=mem.get("MemTotal"), mem_available=mem.get("MemAvailable"),
                 cpus=os.cpu_count(),
                 nproc=None if nproc_soft == resource.RLIM_INFINITY else nproc_soft)
    return facts


def port_range_size(facts: dict[str, Any]) -> int:
    try:
        lo, hi = (int(x) for x in str(facts.get("ip_local_port_range")).split())
    except ValueError:
        return DEFAULT_EPHEMERAL_PORTS
    return hi - lo + 1


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) else default


def server_ceilings(spec: ServerSpec, facts: dict[str, Any]) -> list[Ceiling]:
    """Every limit that caps how many connections ``spec`` can hold here."""
    hard = _int(facts.get("nofile_hard"), 1024)
    nofile = hard if spec.limits.nofile == "max" else min(int(spec.limits.nofile), hard)
    found = [Ceiling(nofile - SERVER_FD_RESERVE, "EMFILE",
                     f"nofile {spec.limits.nofile} = {nofile} descriptors per process")]
    if spec.model == "select":
        found.append(Ceiling(FD_SETSIZE - SERVER_FD_RESERVE, "FD_SETSIZE",
                             "select() cannot watch descriptor 1024 or above"))
    if spec.model in ("threads", "forking"):
        tasks = min(_int(facts.get("pid_max"), 32768), _int(facts.get("threads_max"), 1 << 30),
                    _int(facts.get("nproc"), 1 << 30))
        kind = "threads" if spec.model == "threads" else "pid_max"
        found.append(Ceiling(tasks, kind, f"one {'thread' if kind == 'threads' else 'process'} "
                                          "per connection (pid_max, threads-max, nproc)"))
    if spec.model == "blocking":
        found.append(Ceiling(1, "backlog", f"serves one connection at a time; up to "
                                           f"{spec.limits.backlog} more wait in the backlog"))
    file_max = _int(facts.get("file_max"), 1 << 62)
    found.append(Ceiling(file_max // 2, "ENFILE",
                         f"fs.file-max {file_max}: client and server ends share it on one host"))
    return found


def load_ceiling(scenario: Scenario, facts: dict[str, Any], backend: str) -> Ceiling:
    hard = _int(facts.get("nofile_hard"), 1024)
    workers = workers_needed(scenario.load, hard)
    ips = SOURCE_IPS_PER_LOCAL_WORKER if backend == "local" else 1
    ports = workers * ips * port_range_size(facts)
    per_worker = per_worker_ceiling(hard)
    if workers * per_worker <= ports:
        return Ceiling(workers * per_worker, "EMFILE",
                       f"{workers} worker(s) x {per_worker} connections (nofile {hard} - "
                       f"{DESCRIPTOR_RESERVE})")
    return Ceiling(ports, "EADDRNOTAVAIL", f"{workers} worker(s) x {ips} source address(es) x "
                                           f"{port_range_size(facts)} ports")


def _gib(n: int | None) -> str:
    return "?" if n is None else f"{n / 2**30:.1f} GiB"


def host_lines(facts: dict[str, Any], docker: tuple[bool, str]) -> list[str]:
    file_nr = str(facts.get("file_nr") or "").split()
    nproc = "" if facts.get("nproc") is None else f", nproc {facts['nproc']}"
    rows = [
        ("open files (nofile)", f"soft {facts.get('nofile_soft')}, hard "
                                f"{facts.get('nofile_hard')} per process"),
        ("fs.file-max", f"{facts.get('file_max')} system-wide"
                        f"{f' ({file_nr[0]} in use)' if file_nr else ''}"),
        ("fs.nr_open", f"{facts.get('nr_open')} (ceiling for any nofile hard limit)"),
        ("port range", f"{facts.get('ip_local_port_range')} ({port_range_size(facts)} source "
                       "ports per address and server)"),
        ("somaxconn", f"{facts.get('somaxconn')} (accept-queue cap)"),
        ("pid_max / threads-max", f"{facts.get('pid_max')} / {facts.get('threads_max')}{nproc}"),
        ("memory", f"{_gib(facts.get('mem_total'))} total, {_gib(facts.get('mem_available'))} "
                   "available"),
        ("CPUs", str(facts.get("cpus"))),
        ("Docker", docker[1] if docker[0] else f"not reachable: {docker[1]}"),
    ]
    return [f"  {key:<22} {value}" for key, value in rows]


def scenario_lines(scenario: Scenario, facts: dict[str, Any], backend: str) -> list[str]:
    top = scenario.max_connections
    load = load_ceiling(scenario, facts, backend)
    lines = [f"scenario {scenario.name} ({len(scenario.servers)} servers, top step {top}), "
             f"{backend} backend:"]
    for spec in scenario.servers:
        binding = min(server_ceilings(spec, facts) + [load], key=lambda c: c.connections)
        verdict = "reaches the top step" if binding.connections >= top else \
            f"stops before the top step ({top})"
        lines.append(f"  {spec.name:<12} up to ~{binding.connections:<7} {binding.limit}: "
                     f"{binding.why}; {verdict}")
    lines.append(f"  {'load':<12} up to ~{load.connections:<7} {load.limit}: {load.why}")
    return lines


def doctor_text(scenario: Scenario | None, docker: tuple[bool, str],
                backends: tuple[str, ...] = ("local", "docker"),
                facts: dict[str, Any] | None = None) -> str:
    """The whole doctor report as text."""
    facts = facts if facts is not None else host_facts()
    lines = ["this host:", *host_lines(facts, docker)]
    if scenario is not None:
        for backend in backends:
            lines += ["", *scenario_lines(scenario, facts, backend)]
            if backend == "docker":
                lines.append("  (Docker: containers get --ulimit nofile up to what the daemon "
                             "can grant; namespaced sysctls apply per container)")
    return "\n".join(lines) + "\n"
