"""The multi-host harness's hosts and what the tests made on them (conftest.py
builds and removes the hosts)."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field

from paths import ROOT

TESTHOSTS = ROOT / "scripts" / "testhosts"
DOCKERD = "/usr/sbin/dockerd"
MAIN_ADDRESS = "198.18.250.1"
HARNESS_NET = "198.18.250.0/24"
REMOTE = {"h1": ("tcp://198.18.250.11:2375", "198.18.250.11"),
          "h2": ("tcp://198.18.250.12:2375", "198.18.250.12")}
MARK = "mhtest"  # in every scenario name (and so run id) of these tests


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


def missing() -> str | None:
    """Why the harness cannot be built here, or None."""
    if os.geteuid() != 0:
        return "the multi-host harness needs root (network namespaces, a bridge, iptables)"
    for tool in ("ip", "iptables", "nsenter", "ss", "docker"):
        if shutil.which(tool) is None:
            return f"the multi-host harness needs {tool}"
    if not os.access(DOCKERD, os.X_OK):
        return f"the multi-host harness needs {DOCKERD} (Debian's docker.io)"
    from lab.backends.docker.hosts import docker_available

    ok, why = docker_available()
    return None if ok else why


@dataclass
class Harness:
    clients: dict = field(default_factory=dict)  # main, h1, h2 -> docker client
    up_s: float = 0.0

    def hosts_yaml(self) -> str:
        lines = ["hosts:", f"  - {{name: main, endpoint: local, address: {MAIN_ADDRESS}}}"]
        lines += [f"  - {{name: {n}, endpoint: \"{e}\", address: {a}}}"
                  for n, (e, a) in REMOTE.items()]
        return "\n".join(lines) + "\n"

    def ours(self, host: str, owners: set[int] | None = None) -> list[str]:
        """Containers, networks and volumes labelled ``iolab`` on ``host`` that
        these tests made: on h1/h2 everything (they are the harness's own); on
        main (shared with whatever else runs here) the runs named ``MARK``,
        and marker volumes owned by one of the ``owners`` run-lab pids."""
        client = self.clients[host]
        flt = {"label": "iolab"}

        def mine(labels: dict | None) -> bool:
            labels = labels or {}
            if host != "main" or MARK in labels.get("iolab.run", ""):
                return True
            owner = labels.get("iolab.owner", "")
            return any(owner.split(":")[1:2] == [str(p)] for p in owners or ())

        found = [f"container {c.name}" for c in client.containers.list(
            all=True, ignore_removed=True, filters=flt) if mine(c.labels)]
        found += [f"network {n.name}" for n in client.networks.list(filters=flt)
                  if mine(n.attrs.get("Labels"))]
        found += [f"volume {v.name}" for v in client.volumes.list(filters=flt)
                  if mine(v.attrs.get("Labels"))]
        return found

    def remove_ours_on_main(self) -> None:
        client = self.clients.get("main")
        if client is None:
            return
        flt = {"label": "iolab"}
        for c in client.containers.list(all=True, ignore_removed=True, filters=flt):
            if MARK in c.labels.get("iolab.run", ""):
                c.remove(force=True)
        for n in client.networks.list(filters=flt):
            if MARK in (n.attrs.get("Labels") or {}).get("iolab.run", ""):
                n.remove()

    def leftovers(self, owners: set[int] | None = None) -> dict[str, list[str]]:
        return {h: left for h in self.clients if (left := self.ours(h, owners))}
