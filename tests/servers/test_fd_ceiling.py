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
