"""The ceiling the lab predicts (lab/host/ceiling.py, from contract/fds.py) is
the number of connections a real server holds: each model is started with a
small ``--nofile`` and offered more connections than that; the ones that
echo are counted."""

from __future__ import annotations

import pytest
from srvclients import held_connections

from contract.models import PROCESS_PER_CONNECTION
from lab.host.ceiling import binding, server_ceilings
from lab.host.facts import HostFacts

NOFILE = 64
OFFERED = 90
FACTS = HostFacts(nofile_hard=20000, file_max=1 << 40, pid_max=1 << 20, threads_max=1 << 20)


def test_descriptor_ceiling_is_what_the_server_holds(model, start):
    if model in ("blocking", "threadpool"):
        pytest.skip(f"{model} serves a bounded number at a time, not a descriptor ceiling")
    srv = start(model, "--nofile", str(NOFILE))
    held = held_connections(srv, OFFERED)
    predicted = binding(server_ceilings(model, NOFILE, FACTS))
    if model in PROCESS_PER_CONNECTION:
        assert predicted.limit == "pid_max"
        assert held == OFFERED  # no process holds more than one connection
    else:
        assert predicted.limit == "EMFILE"
        assert held == predicted.connections, f"{model}: held {held}, predicted {predicted}"


def test_a_server_at_its_descriptor_wall_still_reports_its_memory(start):
    """At EMFILE the server cannot open /proc/self/statm for its stats event;
    it must still report its memory (its peak RSS), never 0 bytes."""
    import socket

    srv = start("epoll", "--nofile", "32", "--stats-interval", "0.1")
    socks = []
    try:
        for _ in range(40):
            socks.append(socket.create_connection((srv.host, srv.port), timeout=5))
        srv.wait_event(lambda e: e.get("event") == "limit" and e.get("kind") == "EMFILE")
        at_wall = srv.wait_event(lambda e: e.get("event") == "stats"
                                 and e.get("refused", {}).get("EMFILE"), timeout=10)
        assert at_wall["rss_bytes"] > 5_000_000, at_wall
    finally:
        for s in socks:
            s.close()
