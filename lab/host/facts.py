"""One host's facts, in one spelling: what the lab reads of a machine before a
run (doctor), records in run.json (``hosts``), and plans with after (capacity).

Collectors produce a :class:`HostFacts`: :func:`local_host_facts` reads this
machine's ``/proc`` and rlimits; the Docker backend's ``host_facts`` adds
what a daemon reports and what a container can be granted. Readers of a run
directory call :meth:`HostFacts.from_record` — the only place that knows the
spellings older runs used (``LEGACY_KEYS``, run.json format 1–2).

``nofile_hard`` is the most open files a *server process* may get on that
host: this process's hard limit on the local backend, the highest
``--ulimit nofile`` the daemon can start a container with on Docker. It is
what ``nofile: max`` in a scenario means there.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import resource
import sys
from dataclasses import dataclass, field
from typing import Any

from contract.network import DEFAULT_EPHEMERAL_PORTS
from lab.host.limits import read_host_limits

# Canonical key -> spellings older records used, first found wins:
# Docker's probe wrote ``memory_bytes`` and ``nofile_max_grantable`` (the
# grantable limit beats the probe container's own ``nofile_hard``); the local
# backend wrote ``mem_total_bytes``; doctor said ``mem_total``.
LEGACY_KEYS: dict[str, tuple[str, ...]] = {
    "cpus": ("ncpu",),
    "mem_bytes": ("memory_bytes", "mem_total_bytes", "mem_total"),
    "nofile_hard": ("nofile_max_grantable",),
}
PREFERRED_FIRST = {"nofile_hard"}  # the legacy key is the better fact when both exist


@dataclass(frozen=True)
class HostFacts:
    cpus: int | None = None
    mem_bytes: int | None = None  # physical memory
    mem_available_bytes: int | None = None
    nofile_soft: int | None = None
    nofile_hard: int | None = None  # the most a server process may get (see above)
    file_max: int | None = None  # fs.file-max, shared by every process on the host
    nr_open: int | None = None
    pid_max: int | None = None
    threads_max: int | None = None
    nproc: int | None = None  # RLIMIT_NPROC soft limit, None when unlimited
    somaxconn: int | None = None
    port_range: tuple[int, int] | None = None  # net.ipv4.ip_local_port_range
    extra: dict[str, Any] = field(default_factory=dict)  # kernel, python, docker, file_nr...

    @property
    def ephemeral_ports(self) -> int:
        """Source ports one client address has towards one server ip:port."""
        if self.port_range:
            return self.port_range[1] - self.port_range[0] + 1
        return DEFAULT_EPHEMERAL_PORTS

    @classmethod
    def from_record(cls, record: dict[str, Any] | None) -> HostFacts:
        """Facts from a run.json ``hosts`` entry (any format version) or a collector's dict."""
        record = dict(record or {})
        names = {f.name for f in dataclasses.fields(cls)} - {"extra", "port_range"}
        values: dict[str, Any] = {}
        used: set[str] = set()
        for name in names:
            legacy = LEGACY_KEYS.get(name, ())
            order = (*legacy, name) if name in PREFERRED_FIRST else (name, *legacy)
            key = next((k for k in order if record.get(k) is not None), None)
            if key is not None:
                values[name] = _int(record[key])
                used.add(key)
        values["port_range"] = _port_range(record.get("port_range")
                                           or record.get("ip_local_port_range"))
        used |= {"port_range", "ip_local_port_range"}
        extra = {k: v for k, v in record.items() if k not in used and k not in names}
        return cls(**values, extra=extra)

    def to_record(self) -> dict[str, Any]:
        """Plain data for run.json: canonical keys, then the extras."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)
               if f.name not in ("extra", "port_range")}
        out["port_range"] = list(self.port_range) if self.port_range else None
        return {**out, **self.extra}


def _int(value: Any) -> Any:
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return value


def _port_range(value: Any) -> tuple[int, int] | None:
    if isinstance(value, list | tuple) and len(value) == 2:
        return int(value[0]), int(value[1])
    try:
        low, high = (int(x) for x in str(value).split())
    except ValueError:
        return None
    return low, high


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


def local_host_facts() -> HostFacts:
    """This machine, as the local backend's processes see it."""
    record: dict[str, Any] = dict(read_host_limits())
    mem = meminfo()
    nproc_soft, _ = resource.getrlimit(resource.RLIMIT_NPROC)
    record.update(mem_bytes=mem.get("MemTotal") or os.sysconf("SC_PAGE_SIZE")
                  * os.sysconf("SC_PHYS_PAGES"),
                  mem_available_bytes=mem.get("MemAvailable"), cpus=os.cpu_count(),
                  nproc=None if nproc_soft == resource.RLIM_INFINITY else nproc_soft,
                  kernel=platform.release(), python=sys.version.split()[0])
    return HostFacts.from_record(record)
