"""``load.network`` on Docker: each worker shapes its own eth0 before Locust
starts (root with NET_ADMIN only, in the worker container), a rate-limited
group is bounded by its rate while the unshaped group is not, and nothing is
left behind (the qdisc goes with the worker's network namespace)."""

from __future__ import annotations

import csv
import dataclasses

import pytest

from lab.run.loop import run_scenario
from lab.scenario.types import GroupSpec, NetworkSpec, ServerSpec

pytestmark = pytest.mark.docker

RATE_BPS = 256_000
SIZE = 8192


@pytest.mark.slow
@pytest.mark.timeout(600)  # the first run after mkbase.sh changed builds the base (debootstrap)
def test_a_shaped_group_on_docker_is_bounded_by_its_rate(backend_factory, scenario_of, tmp_path,
                                                          docker_client):
    sc = scenario_of(ServerSpec(name="epoll", model="epoll"), steps=((8, 4.0),), workers=1,
                     name="network")
    sc = dataclasses.replace(sc, load=dataclasses.replace(
        sc.load, message_size=SIZE, pace_s=0.05,
        groups=(GroupSpec("shaped", network=NetworkSpec(rate_bps=RATE_BPS)),
                GroupSpec("free"))))
    backend, _ctx = backend_factory(sc)
    run_dir, outcomes = run_scenario(sc, backend, tmp_path / "out", report=lambda *_: None)
    assert outcomes["epoll"].error is None, outcomes["epoll"].error
    with (run_dir / "groups.csv").open() as f:
        groups = {r["group"]: r for r in csv.DictReader(f)}
    shaped_bps = float(groups["shaped"]["rps"]) * SIZE * 8
    free_bps = float(groups["free"]["rps"]) * SIZE * 8
    assert 0 < shaped_bps <= RATE_BPS * 1.25, groups["shaped"]
    assert free_bps > RATE_BPS * 5, groups["free"]
    flt = {"label": f"iolab.run={run_dir.name}"}
    assert docker_client.containers.list(all=True, ignore_removed=True, filters=flt) == []
