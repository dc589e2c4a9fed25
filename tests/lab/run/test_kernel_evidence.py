"""Kernel evidence per step: a server that serves one connection at a time
with a tiny accept queue makes the kernel drop handshakes (ListenOverflows),
and the lab names that ``backlog`` from the kernel's own counters."""

from __future__ import annotations

from pathlib import Path

import pytest
from faultkit import run_local

from lab.results.writer import read_steps_csv
from lab.run.kernel import counters, socket_states

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time


def test_the_counters_and_states_are_read_from_proc():
    here = counters(Path("/proc/net"))
    assert here is not None and {"listen_overflows", "listen_drops", "retrans_segs"} <= set(here)
    states = socket_states(Path("/proc/net"))
    assert states is not None and set(states) == {"tcp_estab", "tcp_syn_recv", "tcp_time_wait",
                                                  "tcp_close_wait"}
    assert counters(Path("/nonexistent")) is None  # unreadable: None, never a made-up 0


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_blocking_with_backlog_8_overflows_and_is_named_backlog(tmp_path, capsys):
    run_dir = run_local(tmp_path, "name: blocking\nbackend: local\n"
                        "servers: [{model: blocking, limits: {backlog: 8}}]\n"
                        "load: {connect_rate: 1000, hold: 2s, connect_timeout: 1s, "
                        "steps: [300]}\n")
    (row,) = read_steps_csv(run_dir / "steps.csv")
    assert int(row["listen_overflows"]) > 0  # min(8, somaxconn) queued; the rest dropped
    assert row["limit"] == "backlog"
    assert row["tcp_estab"] != "" and row["retrans_segs"] != ""


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_blocking_with_room_in_its_queue_is_named_serialized(tmp_path):
    """With an accept queue big enough for every handshake the kernel drops
    nothing, so it is not ``backlog``: the clients are connected, yet only one
    at a time gets a reply — ``serialized``, from the client-side peaks."""
    run_dir = run_local(tmp_path, "name: blocking\nbackend: local\n"
                        "servers: [{model: blocking, limits: {backlog: 1024}}]\n"
                        "load: {connect_rate: 1000, hold: 3s, io_timeout: 1s, steps: [100]}\n")
    (row,) = read_steps_csv(run_dir / "steps.csv")
    assert row["listen_overflows"] == "0"  # the queue held every handshake
    assert row["limit"] == "serialized"
    assert int(row["connected"]) > 50  # the kernel completed them; the server did not serve
