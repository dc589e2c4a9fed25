"""The rules that keep the load generator's numbers apart from the server's:
client-bound steps, lost workers, the order in which evidence names a limit,
``serialized`` service, and the cause of every step that missed the SLO."""

from __future__ import annotations

from typing import Any

from contract.generator import CPU_BOUND, LAG_P99_BOUND_MS, client_bound_reasons
from lab.analysis.causes import cause
from lab.backends.base import LoadHandle, LostWorker
from lab.results.writer import generator_columns
from lab.run.generator import GeneratorWatch, killed, lost_in_record
from lab.run.poller import stops_model
from lab.run.verdict import serialized, step_limit


def test_no_accounting_is_unknown_not_false():
    assert client_bound_reasons({"rps": 10}) is None
    assert generator_columns({"rps": 10}, None)["client_bound"] is None


def test_each_bound_gives_its_reason_from_record_or_csv_text():
    ok = {"loadgen_cpu_max": 0.4, "loadgen_lag_p99_ms": 1.0, "workers_alive": 2,
          "workers_expected": 2}
    assert client_bound_reasons(ok) == []
    assert generator_columns(ok, None)["client_bound"] is False
    hot = dict(ok, loadgen_cpu_max=CPU_BOUND)
    assert "of a core" in client_bound_reasons(hot)[0]
    late = {k: str(v) for k, v in dict(ok, loadgen_lag_p99_ms=LAG_P99_BOUND_MS + 1).items()}
    assert "late at p99" in client_bound_reasons(late)[0]  # steps.csv cells are text
    short = dict(ok, workers_alive=1)
    assert client_bound_reasons(short) == ["1 of 2 load workers reported (worker lost)"]
    assert generator_columns(short, "worker_lost")["client_bound"] is True
    # more held than asked (record keys, then steps.csv cells)
    over = dict(ok, target_users=50_000, connected=55_000)
    assert "55000 connections, more than the 50000 asked" in client_bound_reasons(over)[0]
    row = {k: str(v) for k, v in dict(ok, target_connections=50_000, connected=55_000).items()}
    assert len(client_bound_reasons(row)) == 1
    assert client_bound_reasons(dict(ok, target_users=50_000, connected=50_000)) == []


def test_a_lost_worker_is_named_once_and_marks_every_short_step():
    class Load(LoadHandle):
        def __init__(self) -> None:
            self.gone: list[LostWorker] = []

        def poll_step_results(self) -> list[dict[str, Any]]:
            return []

        def exit_code(self) -> int | None:
            return None

        def stop(self, timeout: float = 15.0) -> None:
            pass

        def log_tail(self, lines: int = 40) -> str:
            return ""

        def lost_workers(self, lines: int = 12) -> list[LostWorker]:
            return self.gone

    said: list[str] = []
    load = Load()
    watch = GeneratorWatch(load, said.append)
    full = {"step": 0, "workers_alive": 2, "workers_expected": 2, "workers_lost": []}
    assert watch.limit(full) is None and not said
    load.gone = [LostWorker("w-2", "load1", 137, "a\nb\nheartbeat missed")]
    assert watch.limit({**full, "step": 1, "workers_alive": 1}) == "worker_lost"
    assert watch.limit({**full, "step": 2, "workers_alive": 1}) == "worker_lost"
    assert len(said) == 1 and "w-2 on host load1 (exit 137)" in said[0]
    assert "heartbeat missed" in said[0]
    assert watch.lost["w-2"]["step"] == 1 and watch.lost["w-2"]["exit_code"] == 137
    # the loadgen's view alone (no exit seen: a frozen worker) names it by its id
    other = GeneratorWatch(Load(), said.append)
    assert other.limit({"step": 3, "workers_lost": [{"id": "node-7", "host": "h"}]}) == \
        "worker_lost"
    assert "node-7" in other.lost


def test_lost_in_record_and_killed():
    assert lost_in_record({"workers_alive": 1, "workers_expected": 2})
    assert not lost_in_record({"workers_alive": 2, "workers_expected": 2, "workers_lost": []})
    assert not lost_in_record({})
    assert killed(-9) and killed(137) and killed(143)
    assert not killed(0) and not killed(1) and not killed(None)


def test_a_lost_worker_does_not_stop_the_model_but_a_server_limit_does():
    row = {"limit": "worker_lost", "connected": 300, "target_connections": 600}
    assert not stops_model(row, server_dead=False)
    assert stops_model({**row, "limit": "EMFILE"}, server_dead=False)


def test_the_evidence_order():
    record = {"failures": {"mismatch": 3}, "connect_failures": {"EMFILE": 2},
              "peak_connected": 100, "peak_served": 1}
    backlog = {"listen_overflows": 5}
    assert step_limit(event="FD_SETSIZE", death="crash", lost="worker_lost", record=record,
                      evidence=backlog) == "FD_SETSIZE"
    assert step_limit(event=None, death="crash", lost="worker_lost", record=record,
                      evidence=backlog) == "crash"
    assert step_limit(event=None, death=None, lost="worker_lost", record=record,
                      evidence=backlog) == "worker_lost"
    assert step_limit(event=None, death=None, lost=None, record=record,
                      evidence=backlog) == "mismatch"
    record["failures"] = {"timeout": 40}
    assert step_limit(event=None, death=None, lost=None, record=record,
                      evidence=backlog) == "EMFILE"
    record["connect_failures"] = {}
    assert step_limit(event=None, death=None, lost=None, record=record,
                      evidence=backlog) == "backlog"
    assert step_limit(event=None, death=None, lost=None, record=record,
                      evidence={}) == "serialized"
    assert step_limit(event=None, death=None, lost=None, record={}, evidence={}) is None


def test_serialized_needs_few_served_and_timeouts():
    base = {"peak_connected": 300, "peak_served": 1, "failures": {"timeout": 290}}
    assert serialized(base)
    assert not serialized({**base, "peak_served": 300})  # slow but every connection answered
    assert not serialized({**base, "failures": {}})  # no reply was late
    assert not serialized({**base, "peak_connected": 2, "peak_served": 1})
    assert not serialized({"failures": {"timeout": 3}})  # no client-side peaks: unknown
    # Connects that timed out (SYNs dropped by a full conntrack table) were never
    # the server's to serve: c100k's third run, 285 of 1,000 connected.
    dropped_syns = {"peak_connected": 285, "peak_served": 100, "failures": {"timeout": 840},
                    "connect_failures": {"timeout": 840}}
    assert not serialized(dropped_syns, echoing=500)
    assert serialized({**dropped_syns, "failures": {"timeout": 850}}, echoing=500)


def test_idle_connections_are_not_unserved():
    """50,000 idle users and 500 active ones, every active one answered, a
    few echoes timed out: the idle ones never send, so they were never waiting
    for the server (seen in a C100K run before the fix)."""
    idle_heavy = {"peak_connected": 50_500, "peak_served": 500, "failures": {"timeout": 12}}
    assert not serialized(idle_heavy, echoing=500)
    assert serialized({**idle_heavy, "peak_served": 40}, echoing=500)  # 40 of 500 served
    assert step_limit(event=None, death=None, lost=None, record=idle_heavy, evidence={},
                      echoing=500) is None


def test_every_failing_step_names_a_cause():
    why = ["p99 300 ms > 100 ms"]
    assert cause({"limit": "EMFILE"}, why, 0.1, 1) == "limit EMFILE"
    assert cause({"client_bound": True, "loadgen_cpu_max": 0.97}, why, 0.1, 1).startswith(
        "client-bound: a load worker used 0.97")
    assert cause({}, why, 0.95, 1).startswith("server CPU: 0.95 of 1 core")
    assert cause({}, why, 1.2, 2).startswith("unexplained")  # 2 cores usable, 1.2 used
    assert cause({"retrans_segs": 40}, why, 0.2, 1).startswith("retransmissions")
    assert cause({"failure_kinds": "timeout=9;ECONNRESET=2"}, why, 0.2, 1).startswith("timeouts")
    assert cause({"failure_kinds": "ECONNRESET=9"}, why, 0.2, 1).startswith("resets")
    text = cause({"loadgen_cpu_max": 0.3}, why, 0.2, 1)
    assert text.startswith("unexplained: checked server 0.20 of 1 cores") and \
        "0.30 of a core" in text
