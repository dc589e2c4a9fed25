"""Causes from slow clients and waiting handlers (lab/analysis/causes.py): a
starved pool, an event loop stopped by handler waits, and the delayed-ACK
latency mode, each from the row's own evidence."""

from __future__ import annotations

from contract.limits import SERIALIZED
from lab.analysis.causes import cause, delayed_ack_mode, slo_causes, starved_pool
from lab.scenario.types import ServerSpec

EPOLL = ServerSpec(name="epoll", model="epoll", block_us=3000)
NAGLE = ServerSpec(name="threads", model="threads", nodelay=False)
CUSTOM = ServerSpec(name="relay", command=("relay",), port=9000)


def _row(**fields):
    return {"model": "m", "step": 1, "retrans_segs": 0, "tcp_timeouts": 0, "failure_kinds": "",
            "connected": 48, "p50_ms": 0.3, "p99_ms": 900.0, **fields}


POOL = dict(server_workers=8, server_busy=8, server_waiting=31, server_wait_s=4.2,
            server_session_s=12.0)


def test_a_starved_pool_is_serialized_with_the_servers_own_evidence():
    row = _row(**POOL, failure_kinds="timeout=40")
    assert cause(row, ["p99"], 0.1, 2) == (
        f"{SERIALIZED}: 8 of 8 workers busy, 31 connections waiting for one (the oldest 4.2 s);"
        " the longest session had held its worker 12.0 s")
    # The run loop's own serialized limit carries the same evidence.
    limited = cause({**row, "limit": SERIALIZED}, ["limit"], 0.1, 2)
    assert limited.startswith(f"limit {SERIALIZED}: 8 of 8 workers busy")
    assert cause({**row, "limit": "EMFILE"}, ["limit"], 0.1, 2) == "limit EMFILE"


def test_a_pool_with_a_free_worker_or_no_queue_is_not_starved():
    assert starved_pool(_row(**{**POOL, "server_busy": 7})) is None
    assert starved_pool(_row(**{**POOL, "server_waiting": 0})) is None
    assert starved_pool(_row()) is None  # a model that reports no pool
    assert not cause(_row(**{**POOL, "server_busy": 7}), ["p99"], 0.1, 2).startswith(SERIALIZED)


def test_the_blocking_server_is_serialized_by_its_one_long_session():
    row = _row(server_workers=1, server_busy=1, server_session_s=30.5)
    assert cause(row, ["p99"], 0.05, 2) == (
        f"{SERIALIZED}: its one thread served one connection for 30.5 s while the load held "
        "48 (the rest waited in the kernel's accept queue)")
    assert starved_pool({**row, "connected": 1}) is None  # one client: nobody waited


def test_an_event_loop_blocked_by_waiting_handlers_names_the_share_and_the_setting():
    row = _row(server_blocked_per_s=0.98)
    assert cause(row, ["p99"], 0.05, 1, EPOLL) == (
        "event loop blocked: its one thread slept 0.98 s of every second in handler waits "
        "(block_us 3,000 µs per message), serving no one meanwhile")
    # Below the bound it is not the cause, but the unexplained sentence shows it was checked.
    low = cause(_row(server_blocked_per_s=0.2), ["p99"], 0.05, 1, EPOLL)
    assert low.startswith("unexplained:") and "server loop blocked 0.20 s/s" in low


def test_an_event_loops_cpu_bound_handler_is_said_to_run_in_the_loop():
    spin = ServerSpec(name="epoll", model="epoll", work_us=2500)
    assert cause(_row(), ["p99"], 0.97, 1, spin) == (
        "server CPU: 0.97 of 1 core busy (work_us 2,500 µs per message, in the event loop's "
        "one thread)")
    threads = ServerSpec(name="threads", model="threads", work_us=2500)
    assert cause(_row(), ["p99"], 1.9, 2, threads) == "server CPU: 1.90 of 2 cores busy"


def test_a_latency_mode_near_the_delayed_ack_interval_is_named():
    row = _row(p50_ms=0.2, p99_ms=42.0)
    assert cause(row, ["p99"], 0.1, 2, NAGLE) == (
        "Nagle meeting delayed ACK: nodelay off (p99 42.0 ms over p50 0.2 ms, a latency mode "
        "near Linux's 40 ms delayed-ACK interval)")
    on = cause(row, ["p99"], 0.1, 2, ServerSpec(name="epoll", model="epoll"))
    assert on.startswith("delayed-ACK mode: p99 42.0 ms") and "sets TCP_NODELAY" in on
    assert "does not set TCP_NODELAY" in cause(row, ["p99"], 0.1, 2, CUSTOM)
    assert "does not set TCP_NODELAY" in cause(row, ["p99"], 0.1, 2)  # server unknown


def test_no_delayed_ack_mode_far_from_40_ms_or_with_a_slow_median():
    assert delayed_ack_mode(_row(p50_ms=0.2, p99_ms=120.0), NAGLE) is None
    assert delayed_ack_mode(_row(p50_ms=0.2, p99_ms=20.0), NAGLE) is None
    assert delayed_ack_mode(_row(p50_ms=30.0, p99_ms=42.0), NAGLE) is None
    assert delayed_ack_mode(_row(p50_ms=None, p99_ms=42.0), NAGLE) is None


def test_slo_causes_pass_the_server_to_every_failing_row():
    rows = [_row(step=0, p99_ms=1.0, server_blocked_per_s=0.1),
            _row(step=1, server_blocked_per_s=0.99)]
    first, second = slo_causes(rows, [[], ["p99"]], "epoll", 2, server=EPOLL)
    assert first is None and second.startswith("event loop blocked: its one thread slept 0.99")
    assert "block_us 3,000" in second


def test_a_full_conntrack_table_is_named_before_the_retransmissions_it_causes():
    from lab.analysis.causes import cause
    row = {"model": "m", "step": 1, "retrans_segs": 1467, "tcp_timeouts": 1467,
           "failure_kinds": "", "conntrack_drops": 2934}
    said = cause(row, ["held 935 of 1000"], 0.05, 1)
    assert said.startswith("conntrack table full: the kernel dropped 2,934 packets")
    assert "not the server's limit" in said
    del row["conntrack_drops"]
    assert cause(row, ["held 935 of 1000"], 0.05, 1).startswith("retransmissions")
