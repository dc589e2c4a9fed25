"""Where load may go, and the kernel defaults that bound one client.

Load goes only to loopback (127.0.0.0/8, ::1) or to the lab's own Docker
network in 198.18.0.0/15 — the block RFC 2544 reserves for network
benchmarks, which no production host should use. :func:`is_safe_target` is
the one check: scenario validation, the Docker backend and the load generator
call it, unless a scenario says ``allow_external_targets: true`` (the local
backend only ever sends load to 127.0.0.1).
"""

from __future__ import annotations

import ipaddress

LOOPBACK = ipaddress.ip_network("127.0.0.0/8")
LAB_NETWORK = ipaddress.ip_network("198.18.0.0/15")
SAFE_TARGET_NETWORKS = (LOOPBACK, LAB_NETWORK, ipaddress.ip_network("::1/128"))
# Names that mean loopback by definition (RFC 6761), not by a resolver's answer.
LOOPBACK_NAMES = frozenset({"localhost"})

# Linux's default net.ipv4.ip_local_port_range is 32768-60999: one source
# address has this many ports towards one destination ip:port.
DEFAULT_EPHEMERAL_PORTS = 60999 - 32768 + 1  # 28,232

# Sysctls Docker accepts per container: they live in the container's network
# namespace (net.*) or IPC namespace (kernel.shm*, kernel.msg*, kernel.sem,
# fs.mqueue.*). Everything else is host-wide.
NAMESPACED_SYSCTL_PREFIXES = ("net.", "kernel.shm", "kernel.msg", "kernel.sem", "fs.mqueue.")

SAFE_TARGETS_TEXT = "loopback (127.0.0.0/8) or the lab network (198.18.0.0/15)"


def is_safe_target(host: str) -> bool:
    """True for ``localhost``, loopback addresses and 198.18.0.0/15; any other
    name or address is not safe (a name could resolve anywhere)."""
    if host in LOOPBACK_NAMES:
        return True
    try:
        addr = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return False
    return any(addr in net for net in SAFE_TARGET_NETWORKS if net.version == addr.version)


def is_namespaced_sysctl(name: str) -> bool:
    """True when a container can set ``name`` for itself (see above)."""
    return name.startswith(NAMESPACED_SYSCTL_PREFIXES)
