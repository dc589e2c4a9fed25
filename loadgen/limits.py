"""This process's own ceilings: open files and source ports.

Every held connection is a descriptor. ``RLIMIT_NOFILE`` has a soft limit
(what ``socket()`` is checked against, EMFILE beyond it) and a hard limit
(the most an unprivileged process may raise the soft one to). Locust only
raises the soft limit to 10,000; a worker holding 15,000 users needs the
hard limit, so each process raises soft to hard at start. Raising the hard
limit needs CAP_SYS_RESOURCE, which the lab does not have.

Every connection from one source address to one server ip:port also needs
its own ephemeral port (``net.ipv4.ip_local_port_range``, 28,232 ports by
default); beyond that connect() fails with EADDRNOTAVAIL. ``--source-ips``
multiplies the ports by the number of addresses.

:class:`CapacityGuard` warns once, with the numbers, when this process is
asked to hold more users than either ceiling allows, before the first
failure happens, so a reader of the log knows the load side is the limit.

:class:`SocketBudget` keeps the last ``LOADGEN_FD_RESERVE`` descriptors for
everything else in the process: when connections take every descriptor, it
is Locust (its CPU monitor reading ``/proc``, the master connection) and the
step-results file that get EMFILE, and a load generator that cannot write
its results is harmed by the limit it was meant to measure. Connections
beyond the budget fail as EMFILE, as they would a little later in socket().
"""

from __future__ import annotations

import errno
import logging
import resource
from pathlib import Path

from contract.fds import LOADGEN_FD_RESERVE
from contract.limits import EADDRNOTAVAIL, EMFILE
from contract.network import DEFAULT_EPHEMERAL_PORTS

log = logging.getLogger("loadgen")

PORT_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def raise_nofile() -> tuple[int, int]:
    """Raise the soft open-file limit to the hard limit; return (soft, hard)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError) as exc:
            log.warning("could not raise RLIMIT_NOFILE soft %d to hard %d: %s", soft, hard, exc)
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def ephemeral_ports() -> int:
    """How many source ports one address has towards one server ip:port."""
    try:
        lo, hi = (int(x) for x in PORT_RANGE_FILE.read_text().split())
        return hi - lo + 1
    except (OSError, ValueError):
        return DEFAULT_EPHEMERAL_PORTS


class CapacityGuard:
    """Warns once per ceiling when the users held here exceed it."""

    def __init__(self, nofile_soft: int, source_ips: int, ports_per_ip: int) -> None:
        self.fd_budget = max(0, nofile_soft - LOADGEN_FD_RESERVE)
        self.source_ips = max(1, source_ips)
        self.port_budget = ports_per_ip * self.source_ips
        self.nofile_soft = nofile_soft
        self.ports_per_ip = ports_per_ip
        self.warned: set[str] = set()

    def check(self, users: int) -> list[str]:
        """Warnings (logged, each once) for ``users`` users in this process."""
        out = []
        if users > self.fd_budget and EMFILE not in self.warned:
            out.append((EMFILE,
                        f"this load process holds {users} users but RLIMIT_NOFILE is "
                        f"{self.nofile_soft} (~{self.fd_budget} left for connections): expect "
                        f"EMFILE beyond that; add workers to spread the users"))
        if users > self.port_budget and EADDRNOTAVAIL not in self.warned:
            out.append((EADDRNOTAVAIL,
                        f"this load process holds {users} users but {self.source_ips} source "
                        f"address(es) x {self.ports_per_ip} ephemeral ports allow "
                        f"{self.port_budget} connections to one server ip:port: expect "
                        f"EADDRNOTAVAIL; add --source-ips or workers"))
        for kind, text in out:
            self.warned.add(kind)
            log.warning(text)
        return [text for _, text in out]


class SocketBudget:
    """Counts the sockets this process holds; refuses one past ``limit``."""

    __slots__ = ("limit", "held")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0

    @classmethod
    def for_this_process(cls) -> SocketBudget:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return cls(max(1, soft - LOADGEN_FD_RESERVE))

    def take(self) -> None:
        if self.held >= self.limit:
            raise OSError(errno.EMFILE, f"Too many open files (all {self.limit} descriptors "
                                        f"for connections in use; {LOADGEN_FD_RESERVE} kept "
                                        f"for Locust)")
        self.held += 1

    def give(self) -> None:
        self.held -= 1
