"""The walls the lab exists to show, reproduced in containers: select stops
at descriptor 1024 (FD_SETSIZE) while epoll holds 5000 connections coming
from two worker containers, each with its own IP."""

from __future__ import annotations

import time

import pytest

from lab.scenario.types import Limits, ServerSpec

pytestmark = [pytest.mark.docker, pytest.mark.slow]

DEADLINE_S = 150
HOLD_S = 1.0  # the walls show in the ramp; the hold only has to end it


def run_one_step(backend, ctx, spec):
    """Start the server and the load; return (server, load, step records, events)."""
    server = backend.start_server(spec, ctx)
    load = backend.start_load(server, ctx)
    records, events = [], []
    deadline = time.monotonic() + DEADLINE_S
    while not records and time.monotonic() < deadline:
        records += load.poll_step_results()
        events += server.poll_events()
        if load.exit_code() is not None:
            records += load.poll_step_results()
            break
        time.sleep(0.5)
    assert records, f"no step finished; master log:\n{load.log_tail(30)}"
    time.sleep(1.5)  # one more stats event from the server
    events += server.poll_events()
    return server, load, records, events


def test_select_refuses_at_descriptor_1024(backend_factory, scenario_of):
    spec = ServerSpec(name="select", model="select", limits=Limits(nofile="max"),
                      on_fd_limit="refuse")
    sc = scenario_of(spec, steps=((1300, HOLD_S),), workers=2, user="idle", spawn_rate=1000)
    backend, ctx = backend_factory(sc)
    server, _load, records, events = run_one_step(backend, ctx, spec)
    assert server.ready["nofile"] >= 5000  # the process limit is not what stops it
    limits = [e for e in events if e.get("event") == "limit"]
    assert any(e.get("kind") == "FD_SETSIZE" for e in limits), limits
    stats = [e for e in events if e.get("event") == "stats"]
    peak = max(e["peak_connections"] for e in stats)
    assert 900 < peak < 1024, peak
    assert stats[-1]["refused"].get("FD_SETSIZE", 0) > 0
    assert records[0]["target_users"] == 1300


def test_epoll_holds_5000_connections_from_two_worker_containers(backend_factory, scenario_of):
    spec = ServerSpec(name="epoll", model="epoll", limits=Limits(nofile="max"))
    sc = scenario_of(spec, steps=((5000, HOLD_S),), workers=2, user="idle", spawn_rate=1000)
    backend, ctx = backend_factory(sc)
    server, load, records, events = run_one_step(backend, ctx, spec)
    assert len(load.workers) == 2
    assert len(set(load.worker_addresses)) == 2
    assert all(ip.startswith("198.1") for ip in load.worker_addresses)
    assert records[0]["connected"] == 5000, records[0]
    stats = [e for e in events if e.get("event") == "stats"]
    assert max(e["connections"] for e in stats) == 5000
    assert not [e for e in events if e.get("event") == "limit"]
