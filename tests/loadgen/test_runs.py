"""Whole Locust runs (subprocesses) against the project's servers on loopback:
headless, distributed, ``--processes``, and the step-results file they write."""

from __future__ import annotations

import time

import pytest
from locust_runs import (
    established_from,
    finish,
    free_port,
    load_args,
    read_locust_json,
    read_steps,
    start,
    tail,
)
from serverproc import ServerProcess

RUN_TIMEOUT = 180


def ramp_took_its_time(rec, previous_users: int = 0, rate: float = 1000.0) -> None:
    """The hold starts only after the ramp: at least half the ramp's nominal time."""
    nominal = abs(rec["target_users"] - previous_users) / rate
    assert rec["t_ramp_end"] - rec["t_start"] >= 0.5 * nominal, rec


def no_tracebacks(log) -> None:
    text = log.read_text(errors="replace")
    assert "Traceback" not in text and "Unhandled exception" not in text, tail(log)


@pytest.mark.slow
def test_2000_echo_users_against_epoll(tmp_path):
    results, stats, log = tmp_path / "steps.jsonl", tmp_path / "stats", tmp_path / "log"
    with ServerProcess("epoll", "--nofile", "max") as srv:
        proc = start([*load_args(f"tcp://{srv.host}:{srv.port}", "2000:4s", results,
                                 "--pace", "1", "--json-file", str(stats)),
                      "--headless", "--only-summary", "EchoUser"], log)
        assert finish(proc, log, RUN_TIMEOUT) == 0, tail(log)
        final = srv.terminate()
    (rec,) = read_steps(results)
    assert rec["failures"] == {} and rec["connect_failures"] == {}
    assert rec["users"] == rec["connected"] == rec["connect_attempts"] == 2000
    assert rec["workers"] == 1 and rec["t_ramp_end"] < rec["t_end"]
    ramp_took_its_time(rec)
    window = rec["t_end"] - rec["t_ramp_end"]
    assert window == pytest.approx(4.0, abs=0.5)
    assert rec["rps"] == pytest.approx(rec["echo_count"] / window, rel=1e-3)
    assert 0.7 * 2000 * window <= rec["echo_count"] <= 2000 * (window + 1)
    assert 0 < rec["p50_ms"] <= rec["p90_ms"] <= rec["p99_ms"] <= rec["max_ms"]
    locust = read_locust_json(stats)
    assert locust["connect"]["num_requests"] == 2000 and locust["connect"]["num_failures"] == 0
    assert locust["echo"]["num_failures"] == 0
    assert locust["echo"]["num_requests"] >= rec["echo_count"]  # Locust also counts the ramp
    assert final["accepted"] == 2000 and final["peak_connections"] == 2000
    no_tracebacks(log)


@pytest.mark.slow
def test_1500_users_against_select_hit_its_wall(tmp_path):
    results, log = tmp_path / "steps.jsonl", tmp_path / "log"
    with ServerProcess("select", "--nofile", "max") as srv:
        proc = start([*load_args(f"tcp://{srv.host}:{srv.port}", "1500:3s", results,
                                 "--pace", "1"),
                      "--headless", "--only-summary", "EchoUser"], log)
        code = finish(proc, log, RUN_TIMEOUT)
        final = srv.terminate()
    assert code == 1, tail(log)  # Locust's "there were failures", not a crash (2)
    (rec,) = read_steps(results)
    assert 900 <= rec["connected"] < 1024
    assert rec["users"] == 1500  # every user alive: the load side is unharmed
    assert rec["failures"].get("ECONNRESET", 0) >= 1500 - 1024
    assert set(rec["failures"]) <= {"ECONNRESET", "ECONNREFUSED"}, rec["failures"]
    assert rec["echo_count"] > 0 and rec["workers"] == 1
    assert final["refused"].get("FD_SETSIZE", 0) > 0
    no_tracebacks(log)


@pytest.mark.slow
def test_load_side_out_of_descriptors_is_EMFILE_and_the_run_survives(tmp_path):
    """A load process with 400 descriptors asked for 500 users: the guard warns
    with the numbers, the users past the budget fail as EMFILE, and the
    process still writes its results and exits on its own."""
    results, log = tmp_path / "steps.jsonl", tmp_path / "log"
    with ServerProcess("epoll", "--nofile", "max") as srv:
        proc = start([*load_args(f"tcp://{srv.host}:{srv.port}", "500:3s", results,
                                 "--pace", "1"),
                      "--headless", "--only-summary", "EchoUser"], log, nofile=400)
        code = finish(proc, log, RUN_TIMEOUT)
    assert code == 1, tail(log)  # failures, not a crash
    (rec,) = read_steps(results)
    assert rec["users"] == 500
    assert rec["connected"] == 300  # 400 - the 100 kept for Locust itself
    assert set(rec["failures"]) == {"EMFILE"} and rec["failures"]["EMFILE"] >= 200
    assert rec["connect_failures"] == rec["failures"] and rec["echo_count"] > 0
    assert "RLIMIT_NOFILE is 400" in log.read_text()
    no_tracebacks(log)


@pytest.mark.slow
def test_master_and_two_workers_add_up_and_spread_source_ips(tmp_path):
    results, stats = tmp_path / "steps.jsonl", tmp_path / "stats"
    master_port = free_port()
    with ServerProcess("epoll", "--nofile", "max") as srv:
        host = f"tcp://{srv.host}:{srv.port}"
        common = ["--message-size", "64", "--pace", "1", "--schedule", "closed"]
        master_log = tmp_path / "master.log"
        master = start([*load_args(host, "150:2s,300:3s", results, *common,
                                   "--json-file", str(stats)),
                        "--master", "--expect-workers", "2", "--master-bind-port", str(master_port),
                        "--headless", "--only-summary", "EchoUser"], master_log)
        workers = []
        for i, ips in enumerate(("127.0.0.2-127.0.0.3", "127.0.0.4,127.0.0.5")):
            log = tmp_path / f"worker{i}.log"
            workers.append((start(["--worker", "--master-host", "127.0.0.1", "--master-port",
                                   str(master_port), *common, "--source-ips", ips,
                                   "EchoUser"], log), log))
        peak: dict[str, int] = {}
        while master.poll() is None:  # sample the kernel's view during the run
            seen = established_from(srv.port)
            if sum(seen.values()) > sum(peak.values()):
                peak = seen
            if len(read_steps(results)) == 2:
                break
            time.sleep(0.2)
        assert finish(master, master_log, RUN_TIMEOUT) == 0, tail(master_log)
        for proc, log in workers:
            assert finish(proc, log, 30) == 0, tail(log)
    first, second = read_steps(results)
    for rec, target, previous in ((first, 150, 0), (second, 300, 150)):
        ramp_took_its_time(rec, previous)
        assert rec["workers"] == 2
        assert rec["users"] == rec["connected"] == target
        assert rec["failures"] == {} and rec["echo_count"] > 0
    assert first["connect_attempts"] + second["connect_attempts"] == 300
    locust = read_locust_json(stats)
    assert locust["connect"]["num_requests"] == 300
    assert locust["echo"]["num_requests"] >= first["echo_count"] + second["echo_count"]
    assert set(peak) == {"127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.5"}, peak
    assert sum(peak.values()) == 300 and min(peak.values()) >= 60, peak
    for _, log in [(master, master_log), *workers]:
        no_tracebacks(log)


@pytest.mark.slow
def test_processes_with_idle_and_active_users(tmp_path):
    """``--processes 2`` (a master and two forked workers), IdleUsers with
    exactly 10 EchoUsers among them: 100 connections held, ~10 echoes/s."""
    results, log = tmp_path / "steps.jsonl", tmp_path / "log"
    with ServerProcess("epoll", "--nofile", "max") as srv:
        proc = start([*load_args(f"tcp://{srv.host}:{srv.port}", "100:3s", results,
                                 "--pace", "0.5", "--active-users", "10"),
                      "--processes", "2", "--headless", "--only-summary",
                      "IdleUser", "EchoUser"], log)
        assert finish(proc, log, RUN_TIMEOUT) == 0, tail(log)
    (rec,) = read_steps(results)
    assert rec["workers"] == 2
    ramp_took_its_time(rec)
    assert rec["users"] == rec["connected"] == 100 and rec["failures"] == {}
    assert rec["rps"] == pytest.approx(20, rel=0.3)  # 10 users, 2 echoes/s each
    no_tracebacks(log)
