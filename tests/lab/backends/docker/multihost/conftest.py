"""The multi-host harness (marker ``multihost``): this machine's Docker daemon
plus two more, each in its own network namespace, built by ``scripts/testhosts
up`` for the session and removed by ``scripts/testhosts down`` whatever
happened (the fixture's ``finally``; ``up`` runs ``down`` first, so a killed
session's leftovers go too).

It needs root, ``dockerd``, ``ip``, ``iptables``, ``nsenter``, ``ss`` and this
machine's daemon answering. Without them the tests skip with the reason,
unless ``CI`` is set: CI runs as root after ``scripts/ensure-docker``, so a
missing piece there is a failure.

The hosts: ``main`` (endpoint ``local``, reached from the namespaces at the
bridge address 198.18.250.1), ``h1`` and ``h2`` (``tcp://198.18.250.1N:2375``).
Everything stays in 198.18.0.0/15.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from mhharness import REMOTE, TESTHOSTS, Harness, in_ci, missing


def _run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    return subprocess.run([str(TESTHOSTS), *args], capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="session")
def testhosts():
    why = missing()
    if why:
        if in_ci():
            pytest.fail(f"CI is set but {why}")
        pytest.skip(why)
    import docker

    harness = Harness()
    t0 = time.monotonic()
    try:
        up = _run("up")
        if up.returncode != 0:
            pytest.fail(f"scripts/testhosts up failed ({up.returncode}):\n{up.stderr[-3000:]}")
        harness.up_s = time.monotonic() - t0
        print(f"\nmultihost: scripts/testhosts up in {harness.up_s:.1f} s")
        harness.clients["main"] = docker.from_env(timeout=120)
        for name, (endpoint, _address) in REMOTE.items():
            harness.clients[name] = docker.DockerClient(base_url=endpoint, timeout=120)
        yield harness
        left = harness.leftovers()
        assert not left, f"the multihost tests left these behind: {left}"
    finally:
        harness.remove_ours_on_main()  # h1 and h2 go whole with `down`
        for client in harness.clients.values():
            client.close()
        down = _run("down")
        print(f"multihost: scripts/testhosts down: rc {down.returncode}, "
              f"session {time.monotonic() - t0:.1f} s")
        assert down.returncode == 0, down.stderr
