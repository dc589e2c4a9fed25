"""The ceiling the lab predicts (lab/host/ceiling.py, from contract/fds.py) is
the number of connections a real server holds: each model is started with a
small ``--nofile`` and offered more connections than that; the ones that
echo are counted."""

from __future__ import annotations

import socket
import time

import pytest

from contract.models import PROCESS_PER_CONNECTION
from lab.host.ceiling import binding, server_ceilings
from lab.host.facts import HostFacts

NOFILE = 64
OFFERED = 90
FACTS = HostFacts(nofile_hard=20000, file_max=1 << 40, pid_max=1 << 20, threads_max=1 << 20)


def held_connections(srv) -> int:
    socks = []
    try:
        for _ in range(OFFERED):
            socks.append(socket.create_connection((srv.host, srv.port), timeout=5))
        # Give the server time to accept (or refuse) every pending connection:
        # a refused one is closed at once, a held one answers the echo below.
        time.sleep(1.0)
        held = 0
        for s in socks:
            s.settimeout(3.0)  # a held one echoes at once; 3 s is slack for a loaded machine
            try:
                s.sendall(b"x")
                held += s.recv(1) == b"x"
            except OSError:
                pass
        return held
    finally:
        for s in socks:
            s.close()


def test_descriptor_ceiling_is_what_the_server_holds(model, start):
    if model in ("blocking", "threadpool"):
        pytest.skip(f"{model} serves a bounded number at a time, not a descriptor ceiling")
    srv = start(model, "--nofile", str(NOFILE))
    held = held_connections(srv)
    predicted = binding(server_ceilings(model, NOFILE, FACTS))
    if model in PROCESS_PER_CONNECTION:
        assert predicted.limit == "pid_max"
        assert held == OFFERED  # no process holds more than one connection
    else:
        assert predicted.limit == "EMFILE"
        assert held == predicted.connections, f"{model}: held {held}, predicted {predicted}"
