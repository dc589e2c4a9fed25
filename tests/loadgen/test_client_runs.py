"""Slow senders, slow readers, big and varied messages and user groups in
whole Locust runs against the epoll server on loopback (issue 19). Each run
holds a few seconds."""

from __future__ import annotations

import json

import pytest
from locust_runs import finish, free_port, load_args, read_steps, run_headless, start, tail

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time

RUN_TIMEOUT = 60


def one_step(tmp_path, srv, steps: str, *extra: str) -> dict:
    results, log = tmp_path / "steps.jsonl", tmp_path / "locust.log"
    code = run_headless(f"tcp://{srv.host}:{srv.port}", steps, results, log, *extra,
                        timeout=RUN_TIMEOUT)
    assert code == 0, tail(log)
    (rec,) = read_steps(results)
    return rec


def test_256k_echoes_to_a_slow_reader_come_back_whole(tmp_path, epoll_server):
    """A 4 KiB receive buffer read every 2 ms: the server's sends of 256 KiB hit
    EAGAIN over and over; every byte still comes back, in order."""
    rec = one_step(tmp_path, epoll_server, "2:3s", "--message-size", "262144",
                   "--recv-buffer", "4096", "--read-gap", "0.002", "--pace", "0.1")
    assert rec["failures"] == {} and rec["mismatch_example"] is None
    assert rec["echo_count"] >= 4
    # 256 KiB through a ~8 KiB window (the kernel doubles SO_RCVBUF) at 2 ms a read
    assert rec["p50_ms"] >= 2 * 262144 / 16384


def test_a_slow_sender_dribbles_and_latency_counts_from_the_first_byte(tmp_path, epoll_server):
    gap = 0.01
    rec = one_step(tmp_path, epoll_server, "1:2s", "--message-size", "64",
                   "--send-chunk", "1", "--send-gap", str(gap), "--pace", "0")
    assert rec["failures"] == {} and rec["echo_count"] >= 1
    assert rec["p50_ms"] >= 63 * gap * 1000


def test_log_normal_sizes_come_back_whole(tmp_path, epoll_server):
    rec = one_step(tmp_path, epoll_server, "4:2s", "--message-size-median", "512",
                   "--message-size-max", "65536", "--pace", "0.02",
                   "--pace-dist", "exponential")
    assert rec["failures"] == {} and rec["mismatch_example"] is None
    assert rec["echo_count"] >= 100


def test_two_groups_share_users_by_weight_and_merge_across_two_workers(tmp_path, epoll_server):
    groups = json.dumps([{"name": "fast", "weight": 1},
                         {"name": "slow", "weight": 2, "send_chunk": 8, "send_gap": 0.01}])
    results, master_log = tmp_path / "steps.jsonl", tmp_path / "master.log"
    port = free_port()
    host = f"tcp://{epoll_server.host}:{epoll_server.port}"
    common = ["--pace", "0.05", "--groups", groups]
    classes = ["Group_fast", "Group_slow"]
    master = start([*load_args(host, "12:3s", results, *common), "--master",
                    "--expect-workers", "2", "--master-bind-port", str(port),
                    "--headless", "--only-summary", *classes], master_log)
    workers = []
    for i in range(2):
        log = tmp_path / f"worker{i}.log"
        workers.append((start(["--worker", "--master-host", "127.0.0.1", "--master-port",
                               str(port), *common, *classes], log), log))
    assert finish(master, master_log, RUN_TIMEOUT) == 0, tail(master_log)
    for proc, log in workers:
        assert finish(proc, log, 30) == 0, tail(log)
    (rec,) = read_steps(results)
    assert rec["workers"] == 2 and rec["users"] == 12 and rec["failures"] == {}
    fast, slow = rec["groups"]["fast"], rec["groups"]["slow"]
    assert (fast["users"], slow["users"]) == (4, 8)
    assert fast["connected"] + slow["connected"] == rec["connected"] == 12
    # exact: the groups' histograms and counters add up to the totals
    assert fast["echo_count"] + slow["echo_count"] == rec["echo_count"]
    assert fast["connect_attempts"] + slow["connect_attempts"] == rec["connect_attempts"]
    assert max(fast["max_ms"], slow["max_ms"]) == rec["max_ms"]
    assert abs(rec["rps"] - fast["rps"] - slow["rps"]) <= 0.002  # each rounded to 3 places
    # the overrides applied: 64 B in 8-byte chunks 10 ms apart take >= 70 ms
    assert slow["p50_ms"] >= 70 and fast["p99_ms"] < 50
    shares = {w["id"]: w["users"] for w in rec["worker_shares"]}
    assert sorted(shares.values()) == [6, 6]


GROUPS_SCENARIO = """\
name: groups
backend: local
servers: [epoll]
load:
  connect_rate: 1000
  hold: 2s
  pace: 100ms
  steps: [6]
  groups:
    - {name: fast, weight: 1}
    - {name: slow, weight: 2, send_chunk: 16, send_gap: 10ms, recv_buffer: 4096, read_chunk: 8}
"""


def test_a_lab_run_with_groups_writes_groups_csv(tmp_path):
    """The scenario keys reach the loadgen through the lab's Locust command, and
    the run directory gets one groups.csv row per model, step and group."""
    from lab import cli
    from lab.results.groups import read_groups_csv

    scenario, out = tmp_path / "groups.yaml", tmp_path / "out"
    scenario.write_text(GROUPS_SCENARIO)
    assert cli.main([str(scenario), "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    rows = read_groups_csv(run_dir / "groups.csv")
    assert [(r["model"], r["step"], r["group"], r["users"]) for r in rows] == [
        ("epoll", "0", "fast", "2"), ("epoll", "0", "slow", "4")]
    fast, slow = rows
    assert fast["error_rate"] == slow["error_rate"] == "0.0" and slow["failure_kinds"] == ""
    assert float(slow["p50_ms"]) >= 30 > float(fast["p99_ms"])  # 3 gaps of 10 ms in 64 bytes
