"""Fixtures for tests against the real Docker daemon (marker ``docker``).

No daemon: the tests skip with the reason, unless ``CI`` is set (CI runs
``scripts/ensure-docker`` first, so a missing daemon there is a failure).
Every test leaves no container or network labelled ``iolab`` behind: the
session fixture checks that at the end, removes strays and fails if any.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lab.backends.base import RunContext
from lab.backends.docker.backend import DockerBackend
from lab.backends.docker.hosts import docker_available
from lab.scenario.types import LoadSpec, Scenario, ServerSpec, Step


def _ci() -> bool:
    return os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


# Every run these tests start has this in its run id (scenario names and run
# ids below), so the leftover checks see only the tests' own containers, not
# those of a lab run someone else started on the same daemon.
MARK = "itest"


def ours(client) -> tuple[list, list]:
    """(containers, networks) of runs started by these tests."""
    def mine(labels: dict) -> bool:
        return MARK in (labels or {}).get("iolab.run", "")

    flt = {"label": "iolab"}
    listed = client.containers.list(all=True, ignore_removed=True, filters=flt)
    return ([c for c in listed if mine(c.labels)],
            [n for n in client.networks.list(filters=flt) if mine(n.attrs.get("Labels"))])


def labelled(client) -> list[str]:
    containers, networks = ours(client)
    return [f"container {c.name}" for c in containers] + [f"network {n.name}" for n in networks]


def remove_ours(client) -> None:
    containers, networks = ours(client)
    for thing in containers:
        thing.remove(force=True)
    for thing in networks:
        thing.remove()


@pytest.fixture(scope="session")
def docker_client():
    ok, why = docker_available()
    if not ok:
        if _ci():
            pytest.fail(f"CI is set but {why}")
        pytest.skip(why)
    import docker

    client = docker.from_env(timeout=120)
    if labelled(client):  # an earlier, killed session: not this session's fault
        remove_ours(client)
    yield client
    left = labelled(client)
    remove_ours(client)
    assert not left, f"the integration tests left these behind: {left}"


@pytest.fixture(scope="session")
def lab_image(docker_client) -> str:
    """The app image (built once per session if the sources changed)."""
    from lab.backends.docker.images import ensure_image

    t0 = time.monotonic()
    tag = ensure_image({"local": docker_client}, progress=lambda _m: None)
    print(f"lab image {tag} ready in {time.monotonic() - t0:.1f} s")
    return tag


@pytest.fixture
def no_leftovers(docker_client):
    """Per test: nothing labelled iolab remains once the test is done."""
    yield
    left = labelled(docker_client)
    remove_ours(docker_client)
    assert not left, f"left behind: {left}"


def make_scenario(*servers: ServerSpec, steps=((20, 2.0),), workers: int | None = 1,
                  user: str = "echo", spawn_rate: float = 200.0, name: str = "run",
                  **kwargs) -> Scenario:
    return Scenario(
        name=f"{MARK}-{name}",
        servers=tuple(servers),
        load=LoadSpec(user=user, steps=tuple(Step(c, h) for c, h in steps), workers=workers,
                      spawn_rate=spawn_rate, pace_s=1.0),
        **kwargs,
    )


@pytest.fixture
def scenario_of():
    return make_scenario


@pytest.fixture
def backend_factory(docker_client, lab_image, tmp_path, no_leftovers):
    """``make(scenario, clients=None) -> (backend, ctx)``; every backend is
    cleaned up after the test whatever happened."""
    made: list[DockerBackend] = []

    def make(scenario: Scenario, clients=None, run_id: str | None = None):
        clients = clients or {h.name: docker_client for h in scenario.hosts}
        backend = DockerBackend(scenario, clients=clients, image=lab_image)
        made.append(backend)
        rid = run_id or f"{MARK}{os.getpid()}-{len(made)}-{int(time.time()) % 100000}"
        ctx = RunContext(run_id=rid, run_dir=Path(tmp_path) / rid, scenario=scenario)
        return backend, ctx

    yield make
    for backend in made:
        backend.cleanup()
