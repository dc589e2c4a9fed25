"""One bridge network per run per daemon, in 198.18.0.0/15.

198.18.0.0/15 is reserved for network benchmarks (RFC 2544): it routes
nowhere on the Internet, so load aimed at it can only reach the lab's own
containers. Each run takes a free /24 from it (512 of them), so concurrent
runs (or a leftover network) do not collide; Docker refuses a subnet that
overlaps an existing network's ("Pool overlaps with other one on this address
space"), which is retried with the next candidate.

On a user-defined bridge every container gets its own IP, and the host itself
can route to those IPs (it owns the bridge's gateway address), which is how a
local run reaches a server without publishing ports.
"""

from __future__ import annotations

import ipaddress
import zlib

from contract.network import LAB_NETWORK
from lab.errors import BackendError

PREFIX = 24
ATTEMPTS = 8


def used_subnets(client) -> list[ipaddress.IPv4Network]:
    used = []
    for net in client.networks.list():
        for cfg in (net.attrs.get("IPAM") or {}).get("Config") or []:
            try:
                used.append(ipaddress.ip_network(cfg.get("Subnet", ""), strict=False))
            except ValueError:
                continue
    return used


def route_subnets(path: str = "/proc/net/route") -> list[ipaddress.IPv4Network]:
    """The IPv4 networks this machine routes (its links and any static routes),
    from the kernel's routing table. A run network overlapping one of them
    would take that traffic over (a /24 on top of a host's own link broke its
    routing); the default route (0.0.0.0/0) is not a subnet to avoid. Fields
    are hex in host byte order (little-endian here)."""
    out = []
    try:
        with open(path) as f:
            next(f, None)  # the header
            for line in f:
                fields = line.split()
                if len(fields) < 8:
                    continue
                dest, mask = (ipaddress.IPv4Address(int(x, 16).to_bytes(4, "little"))
                              for x in (fields[1], fields[7]))
                if int(mask):
                    out.append(ipaddress.ip_network(f"{dest}/{mask}", strict=False))
    except (OSError, ValueError):
        return []
    return out


def candidate_subnets(run_id: str, used: list) -> list[ipaddress.IPv4Network]:
    """Free /24s of the supernet, starting at a place derived from ``run_id``."""
    subnets = list(LAB_NETWORK.subnets(new_prefix=PREFIX))
    start = zlib.crc32(run_id.encode()) % len(subnets)
    ordered = subnets[start:] + subnets[:start]
    return [s for s in ordered if not any(s.overlaps(u) for u in used)]


def create_run_network(client, name: str, run_id: str, labels: dict[str, str],
                       avoid: tuple = ()):
    """Create the run's bridge network on ``client``'s daemon, in a /24 that
    overlaps none of its networks nor ``avoid`` (the host's routed subnets
    and the scenario's host addresses)."""
    import docker.errors
    from docker.types import IPAMConfig, IPAMPool

    last_error: Exception | None = None
    for subnet in candidate_subnets(run_id, [*used_subnets(client), *avoid])[:ATTEMPTS]:
        gateway = str(next(subnet.hosts()))
        ipam = IPAMConfig(pool_configs=[IPAMPool(subnet=str(subnet), gateway=gateway)])
        try:
            return client.networks.create(name, driver="bridge", ipam=ipam, labels=labels,
                                          check_duplicate=True)
        except docker.errors.APIError as exc:
            last_error = exc  # overlap with a network created meanwhile: next one
    raise BackendError(f"could not create network {name} in {LAB_NETWORK}: {last_error}")


def container_ip(container, network_name: str) -> str:
    """A container's address on the named network (after it started)."""
    container.reload()
    nets = container.attrs["NetworkSettings"]["Networks"]
    try:
        return nets[network_name]["IPAddress"]
    except KeyError as exc:
        raise BackendError(f"{container.name} is not on network {network_name}") from exc


def published_ports(container, port: int) -> list[int]:
    """Every host port Docker bound for ``port/tcp``, in binding order
    (deduplicated: Docker 20.10 lists a port once per address family)."""
    container.reload()
    bindings = (container.attrs["NetworkSettings"].get("Ports") or {}).get(f"{port}/tcp")
    if not bindings:
        raise BackendError(f"{container.name}: port {port}/tcp is not published")
    return list(dict.fromkeys(int(b["HostPort"]) for b in bindings))


def published_port(container, port: int) -> int:
    """The (first) host port Docker bound for ``port/tcp``."""
    return published_ports(container, port)[0]
