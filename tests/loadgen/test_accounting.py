"""The generator accounting in every step record (loadgen/meter.py, lag.py,
collect.py): each load process's CPU and event-loop lag over the hold, and the
master's roster (expected, alive, lost), in real Locust processes."""

from __future__ import annotations

import os
import re
import signal
import socket
import time

import pytest
from locust_runs import (
    established_from,
    finish,
    free_port,
    load_args,
    read_steps,
    run_headless,
    start,
    tail,
    wait_for,
)
from serverproc import ServerProcess
from test_runs import RUN_TIMEOUT, no_tracebacks

from loadgen.meter import Meter, Snapshot, merge
from loadgen.steps import COLLECT_TIMEOUT_S

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time

ACCOUNTING = ("loadgen_cpu_max", "loadgen_lag_p99_ms", "workers_expected", "workers_alive",
              "workers_lost", "worker_shares")


def test_lag_and_cpu_come_from_the_window():
    m = Meter()
    for late_ms in [0.5] * 98 + [40, 80]:
        m.loop_late(late_ms / 1000)
    snap = m.snapshot(users=3)
    assert snap.lag_samples == 100
    assert snap.lag_p99_ms == pytest.approx(40, rel=0.01)
    assert snap.lag_max_ms == pytest.approx(80, rel=0.01)
    assert snap.cpu is not None and snap.cpu >= 0 and snap.host == socket.gethostname()
    back = Snapshot.from_message(snap.to_message())
    assert (back.lag_p99_ms, back.lag_max_ms, back.cpu) == (snap.lag_p99_ms, snap.lag_max_ms,
                                                             snap.cpu)
    assert m.snapshot(users=0).lag_p99_ms is None  # a new window: no samples yet


def test_merge_takes_the_worst_worker_and_keeps_the_roster():
    a = Snapshot(users=5, connected=5, window_s=1, cpu=0.4, lag_p99_ms=2.0, host="h1", id="h1_a",
                 rss_bytes=1000)
    b = Snapshot(users=6, connected=4, window_s=1, cpu=0.95, lag_p99_ms=1.0, host="h2", id="h2_b",
                 rss_bytes=2000)
    lost = [{"id": "h3_c", "host": "h3"}]
    rec = merge([a, b], expected=3, lost=lost, master_rss=500)
    assert rec["loadgen_rss_bytes"] == 3500  # both workers and the master
    assert (rec["loadgen_cpu_max"], rec["loadgen_lag_p99_ms"]) == (0.95, 2.0)
    assert (rec["workers_expected"], rec["workers_alive"], rec["workers"]) == (3, 2, 2)
    assert rec["workers_lost"] == lost
    assert rec["worker_shares"][1] == {"id": "h2_b", "host": "h2", "cpu": 0.95,
                                       "lag_p99_ms": 1.0, "lag_max_ms": None, "users": 6,
                                       "connected": 4, "rss_bytes": 2000}
    none = merge([], expected=2, lost=lost)
    assert none["loadgen_cpu_max"] is None and none["loadgen_lag_p99_ms"] is None
    assert none["loadgen_rss_bytes"] is None  # unknown, not zero
    assert (none["workers_expected"], none["workers_alive"]) == (2, 0)


@pytest.mark.slow
def test_a_standalone_run_accounts_for_itself(tmp_path):
    results, log = tmp_path / "steps.jsonl", tmp_path / "log"
    with ServerProcess("epoll", "--nofile", "max") as srv:
        code = run_headless(f"tcp://{srv.host}:{srv.port}", "300:3s,100:2s", results, log,
                            "--pace", "1", timeout=RUN_TIMEOUT)
    assert code == 0, tail(log)
    records = read_steps(results)
    assert len(records) == 2
    for rec, users in zip(records, (300, 100), strict=True):
        assert all(k in rec for k in ACCOUNTING), rec
        assert 0 < rec["loadgen_cpu_max"] <= 1.5, rec
        assert rec["loadgen_lag_p99_ms"] >= 0
        assert rec["workers_alive"] == rec["workers_expected"] == rec["workers"] == 1
        assert rec["workers_lost"] == []
        (share,) = rec["worker_shares"]
        assert share["host"] == socket.gethostname() and share["id"].startswith(share["host"])
        assert share["cpu"] == rec["loadgen_cpu_max"]
        assert share["lag_p99_ms"] == rec["loadgen_lag_p99_ms"] <= share["lag_max_ms"]
        assert share["users"] == share["connected"] == users
        # standalone: the one process is the whole load, counted once
        assert rec["loadgen_rss_bytes"] == share["rss_bytes"] > 20_000_000
    assert records[0]["worker_shares"][0]["id"] == records[1]["worker_shares"][0]["id"]
    no_tracebacks(log)


def start_master_and_workers(tmp_path, srv, steps: str, workers: int, *load: str):
    results, port = tmp_path / "steps.jsonl", free_port()
    master_log = tmp_path / "master.log"
    master = start([*load_args(f"tcp://{srv.host}:{srv.port}", steps, results, *load),
                    "--master", "--expect-workers", str(workers), "--master-bind-port",
                    str(port), "--headless", "--only-summary", "EchoUser"], master_log)
    procs = []
    for i in range(workers):
        log = tmp_path / f"worker{i}.log"
        procs.append((start(["--worker", "--master-host", "127.0.0.1", "--master-port",
                             str(port), *load, "EchoUser"], log), log))
    return results, (master, master_log), procs


@pytest.mark.slow
def test_a_flat_out_worker_reads_as_cpu_bound(tmp_path):
    """One worker echoing as fast as its 200 users can: the generator, not the
    server, is the bottleneck (it costs about twice the server's CPU per echo),
    and its share says so."""
    with ServerProcess("epoll", "--nofile", "max") as srv:
        results, (master, master_log), workers = start_master_and_workers(
            tmp_path, srv, "200:5s", 1, "--pace", "0")
        assert finish(master, master_log, RUN_TIMEOUT) == 0, tail(master_log)
        for proc, log in workers:
            assert finish(proc, log, 30) == 0, tail(log)
    (rec,) = read_steps(results)
    assert rec["workers_alive"] == rec["workers_expected"] == 1 and rec["workers_lost"] == []
    assert rec["loadgen_cpu_max"] >= 0.9, rec
    assert rec["rps"] > 2000 and rec["failures"] == {}
    (share,) = rec["worker_shares"]
    assert share["users"] == 200 and share["cpu"] == rec["loadgen_cpu_max"]
    # the master's own memory is part of the load's
    assert rec["loadgen_rss_bytes"] > share["rss_bytes"] + 20_000_000


def ready_workers(master_log) -> set[str]:
    """The node ids the master saw connect (Locust logs each one)."""
    return set(re.findall(r"(\S+) \(index \d+\) reported as ready",
                          master_log.read_text(errors="replace")))


@pytest.mark.slow
def test_a_worker_killed_mid_step_is_named_lost(tmp_path):
    """Two workers hold 100 users; one is SIGKILLed 1.5 s into the 4 s hold.
    Locust calls it missing ``--worker-timeout`` (2 s) later, about when the
    hold ends, and the step record comes out then, not after
    COLLECT_TIMEOUT_S, naming it."""
    timeout_s = 2
    with ServerProcess("epoll", "--nofile", "max") as srv:
        results, (master, master_log), workers = start_master_and_workers(
            tmp_path, srv, "100:4s,60:3s", 2, "--pace", "0.5",
            "--worker-timeout", str(timeout_s))
        assert wait_for(lambda: sum(established_from(srv.port).values()) == 100, 60), \
            tail(master_log)
        time.sleep(1.5)  # the ramp ended (100 connected): the hold has begun
        victim, victim_log = workers[0]
        os.kill(victim.pid, signal.SIGKILL)
        killed_at = time.time()
        assert wait_for(lambda: len(read_steps(results)) >= 1, COLLECT_TIMEOUT_S + 30)
        first_seen = time.time()
        assert finish(master, master_log, RUN_TIMEOUT) == 0, tail(master_log)
        survivor, survivor_log = workers[1]
        assert finish(survivor, survivor_log, 30) == 0, tail(survivor_log)
        victim.wait()
    first, second = read_steps(results)
    assert first["t_ramp_end"] < killed_at < first["t_end"], (killed_at, first)
    assert first_seen - first["t_end"] < timeout_s + 3 < COLLECT_TIMEOUT_S, \
        "waited for the dead worker"
    ids = ready_workers(master_log)
    assert len(ids) == 2, master_log.read_text()[-2000:]
    for rec in (first, second):
        assert rec["workers_expected"] == 2 and rec["workers_alive"] == rec["workers"] == 1
        (share,) = rec["worker_shares"]
        (lost,) = rec["workers_lost"]
        assert {share["id"], lost["id"]} == ids and share["id"] != lost["id"]
        assert lost["host"] == socket.gethostname() and lost["id"].startswith(lost["host"])
    assert first["worker_shares"][0]["users"] == 50  # the survivor's half
    assert second["users"] == second["connected"] == 60  # the run went on without it
    for log in (master_log, survivor_log):
        no_tracebacks(log)

