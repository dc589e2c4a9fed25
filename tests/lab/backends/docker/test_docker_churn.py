"""Churn on the Docker backend (issue 18): every user connects, echoes,
closes; the accept rate is measured, the load's TIME_WAIT sockets are read in
the worker container's namespace and the server's accept queue in its own."""

from __future__ import annotations

import csv

import pytest

from lab.run.loop import run_scenario
from lab.scenario.types import LoadSpec, ServerSpec, Step

pytestmark = pytest.mark.docker


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_churn_on_docker_measures_the_accept_rate_and_both_ends_sockets(
        backend_factory, scenario_of, tmp_path):
    sc = scenario_of(ServerSpec(name="epoll", model="epoll"), name="churn")
    sc = type(sc)(name=sc.name, servers=sc.servers,
                  load=LoadSpec(user="churn", steps=(Step(20, 3.0),), workers=1,
                                spawn_rate=200.0))
    backend, _ctx = backend_factory(sc)
    run_dir, outcomes = run_scenario(sc, backend, tmp_path / "out", report=lambda *_: None)
    assert outcomes["epoll"].error is None
    with (run_dir / "steps.csv").open() as f:
        (row,) = list(csv.DictReader(f))
    assert row["limit"] == "" and float(row["connects_per_s"]) > 100, row
    # The churn client closes first: its ends wait in TIME_WAIT in the worker's namespace.
    assert int(row["load_time_wait"]) > 0 and int(row["load_ports_max"]) > 0, row
    # The server container's listener, read through sock_diag in its namespace:
    # backlog 1024 with the container's somaxconn set to it.
    assert row["accept_queue_max"] == "1024", row
