"""Pure logic of the load generator: option parsing, the target guard, the
HDR merge, the two schedules, the capacity warnings."""

from __future__ import annotations

import argparse
import errno
import random

import pytest

from loadgen.failures import ClosedByServer, EchoMismatch, TcpFailure, classify, failure
from loadgen.limits import CapacityGuard
from loadgen.meter import Meter, Snapshot, merge
from loadgen.options import (
    LoadOptions,
    Step,
    add_arguments,
    parse_source_ips,
    parse_steps,
    split_host,
    target_address,
    worker_local,
)
from loadgen.schedule import Schedule

pytestmark = pytest.mark.locust  # imports Locust (gevent patches the stdlib); loads nothing


def test_steps_parse_with_units():
    assert parse_steps("500:20s, 1000:1.5m,2000:30,10:250ms") == (
        Step(500, 20.0), Step(1000, 90.0), Step(2000, 30.0), Step(10, 0.25))


@pytest.mark.parametrize("bad", ["500", "500:", "x:2s", "500:2d", "500:0s"])
def test_bad_steps_name_the_part(bad):
    with pytest.raises(ValueError, match=bad.split(",")[0].strip()[:3]):
        parse_steps(bad)


def test_source_ips_lists_and_ranges():
    assert parse_source_ips("127.0.0.2-127.0.0.4, 127.0.1.1") == (
        "127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.1.1")
    assert parse_source_ips("") == ()
    with pytest.raises(ValueError):
        parse_source_ips("127.0.0.9-127.0.0.2")


def test_options_parse_and_reject_through_argparse():
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    ns = parser.parse_args(["--steps", "5:1s", "--pace", "0.5", "--schedule", "fixed"])
    assert (ns.steps, ns.pace, ns.message_size, ns.schedule) == ("5:1s", 0.5, 64, "fixed")
    assert LoadOptions.from_parsed(ns) == LoadOptions(pace_s=0.5, schedule="fixed")
    web_ui = {a.dest for a in parser._actions if getattr(a, "include_in_web_ui", False)}
    assert {"steps", "message_size", "pace"} <= web_ui and "source_ips" not in web_ui
    assert "target_port" not in web_ui and ns.target_port == 0
    with pytest.raises(argparse.ArgumentError, match="not USERS:HOLD"):
        parser.parse_args(["--steps", "oops"])


def test_target_guard_allows_only_loopback_and_the_lab_network():
    assert split_host("tcp://127.0.0.1:9000") == ("127.0.0.1", 9000)
    assert target_address("tcp://127.0.0.3:9000") == ("127.0.0.3", 9000)
    assert target_address("198.18.0.5:1") == ("198.18.0.5", 1)
    with pytest.raises(ValueError, match="refusing"):
        target_address("tcp://192.0.2.10:80")  # resolved locally, nothing is sent
    with pytest.raises(ValueError):
        split_host("tcp://127.0.0.1")


def test_failures_are_classified():
    assert classify(ConnectionRefusedError(errno.ECONNREFUSED, "x")) == "ECONNREFUSED"
    assert classify(ClosedByServer()) == "ECONNRESET"
    assert classify(BrokenPipeError(errno.EPIPE, "x")) == "ECONNRESET"
    assert classify(TimeoutError()) == "timeout"
    assert classify(EchoMismatch()) == "mismatch"
    assert classify(OSError(errno.EMFILE, "x")) == "EMFILE"
    assert classify(OSError(errno.EADDRINUSE, "x")) == "EADDRNOTAVAIL"
    assert classify(OSError(errno.EHOSTUNREACH, "x")) == "other"
    f = failure(OSError(errno.ENFILE, "Too many open files in system"))
    assert isinstance(f, TcpFailure) and str(f) == "ENFILE: Too many open files in system"


def snapshot_with(values_ms, **kw) -> Snapshot:
    m = Meter()
    for v in values_ms:
        m.echo_ok(v / 1000)
    return Snapshot(histogram=m.histogram, **kw)


def test_merge_is_exact_over_workers():
    rng = random.Random(7)
    a = [rng.uniform(0.1, 5) for _ in range(5000)]
    b = [rng.uniform(50, 100) for _ in range(100)]  # one slow worker: the p99 lives here
    rec = merge([snapshot_with(a, users=10, connected=9, connect_attempts=11,
                               connect_failures={"ECONNREFUSED": 2},
                               failures={"ECONNREFUSED": 2, "timeout": 1}, window_s=2.0),
                 snapshot_with(b, users=5, connected=5, connect_attempts=5,
                               failures={"timeout": 3}, window_s=1.0)])
    everything = sorted(a + b)
    true_p99 = everything[int(0.99 * len(everything)) - 1]
    assert rec["p99_ms"] == pytest.approx(true_p99, rel=0.002)
    assert rec["max_ms"] == pytest.approx(max(b), rel=0.002)
    assert rec["p50_ms"] == pytest.approx(everything[len(everything) // 2], rel=0.01)
    # each worker's echoes over its own window: 5000 / 2 s + 100 / 1 s
    assert (rec["echo_count"], rec["rps"], rec["workers"]) == (5100, 2600.0, 2)
    assert (rec["users"], rec["connected"], rec["connect_attempts"]) == (15, 14, 16)
    assert rec["failures"] == {"ECONNREFUSED": 2, "timeout": 4}
    assert rec["connect_failures"] == {"ECONNREFUSED": 2}


def test_snapshot_survives_the_wire_and_resets_the_step():
    m = Meter()
    m.opened()
    m.connect_started()
    m.failed("mismatch")
    for v in (1, 2, 3):
        m.echo_ok(v / 1000)
    wire = m.snapshot(users=1).to_message()
    assert isinstance(wire["histogram"], bytes)
    back = Snapshot.from_message(wire)
    assert back.histogram.get_total_count() == 3 and back.failures == {"mismatch": 1}
    assert m.connect_attempts == 0 and not m.failures and m.connected == 1
    assert m.histogram.get_total_count() == 0


def test_no_echoes_means_null_latencies():
    rec = merge([Snapshot(users=3, window_s=1.0)])
    assert rec["p50_ms"] is None and rec["max_ms"] is None and rec["rps"] == 0


def test_closed_schedule_measures_from_the_send():
    s = Schedule(1.0, fixed=False, now=100.0)
    assert 100.0 <= s.due < 101.0
    assert s.origin(now=105.0) is None
    s.advance(sent_at=105.0)  # the reply was late: next one pace after the send
    assert s.due == 106.0


def test_closed_schedule_keeps_the_phase_of_a_late_send():
    s = Schedule(1.0, fixed=False, now=100.0)
    due = s.due
    s.advance(sent_at=due + 0.3)  # sent late (a stall of the generator), reply in time
    assert s.due == due + 1.0  # not due + 1.3: the user's phase is where it was


def test_a_stall_does_not_bunch_the_later_sends():
    # 100 users due at 100.00, 100.01, ... 100.99; a stall of the loop until 100.5
    # releases the first 50 together. Their next echoes stay as spread as before.
    users = [Schedule(1.0, fixed=False, now=0.0) for _ in range(100)]
    for k, s in enumerate(users):
        s.due = 100.0 + k / 100
        s.advance(sent_at=max(s.due, 100.5))
    assert len({round(s.due, 6) for s in users}) == 100


def test_fixed_schedule_keeps_intended_times():
    s = Schedule(1.0, fixed=True, now=100.0)
    first = s.due
    for k in range(4):  # a stall: we only get to send at 104.5
        assert s.origin(now=104.5) == first + k
        s.advance(sent_at=104.5)
    assert s.due == first + 4
    assert Schedule(0.0, fixed=True, now=1.0).fixed is False  # no rate, no intended times


def test_capacity_guard_warns_once_with_numbers(caplog):
    guard = CapacityGuard(nofile_soft=1100, source_ips=0, ports_per_ip=500)
    assert guard.check(400) == []
    first = guard.check(1001)
    assert len(first) == 2
    assert "RLIMIT_NOFILE is 1100" in first[0] and "allow 500" in first[1]
    assert guard.check(1500) == []


def test_workers_compute_locusts_default_options_once(monkeypatch):
    """A worker's spawn message filters ~70 options against
    ``default_args_dict()``, which builds a whole parser per call (see
    ``cache_default_args``); once cached, no parser is built again."""
    import locust.argument_parser as ap

    from loadgen.listeners import cache_default_args

    monkeypatch.setattr(ap, "default_args_dict", ap.default_args_dict)  # restored after
    fresh = ap.default_args_dict()
    cache_default_args()
    cache_default_args()  # idempotent: wraps once

    def no_parser(*_a, **_k):
        raise AssertionError("built a parser again")

    monkeypatch.setattr(ap, "setup_parser_arguments", no_parser)
    got = ap.default_args_dict()
    assert got == fresh and "host" in got
    got["host"] = "changed"  # a caller's change does not leak into the next call
    assert ap.default_args_dict()["host"] == fresh["host"]


@pytest.mark.parametrize("timeout_s", [1.0, 2.0, 3.0, 11.0, 30.0])
def test_the_heartbeats_call_a_silent_worker_missing_after_the_worker_timeout(timeout_s):
    """Locust's master counts a worker's liveness down once per interval and
    calls it missing below zero: (liveness + 1) intervals of silence. At
    least four heartbeats fit in the timeout; the drop stays 60 s later."""
    from loadgen.listeners import heartbeat_for

    interval, liveness, dead = heartbeat_for(timeout_s)
    assert (liveness + 1) * interval == pytest.approx(timeout_s)
    assert interval <= min(1.0, timeout_s / 4) and liveness >= 3
    assert -dead * interval == pytest.approx(60.0)


def test_the_default_worker_timeout_is_the_heartbeats_the_lab_always_had():
    """11 s: Locust's 1 s heartbeat and a liveness of 10 (its own default is 3)."""
    import locust.runners

    from loadgen.listeners import heartbeat_for, set_worker_timeout

    ns = argparse.ArgumentParser()
    add_arguments(ns)
    assert heartbeat_for(ns.parse_args([]).worker_timeout) == (1.0, 10, -60)
    saved = (locust.runners.HEARTBEAT_INTERVAL, locust.runners.HEARTBEAT_LIVENESS,
             locust.runners.HEARTBEAT_DEAD_INTERNAL)
    try:
        set_worker_timeout(2.0)
        assert (locust.runners.HEARTBEAT_INTERVAL, locust.runners.HEARTBEAT_LIVENESS,
                locust.runners.HEARTBEAT_DEAD_INTERNAL) == (0.5, 3, -120)
    finally:
        (locust.runners.HEARTBEAT_INTERVAL, locust.runners.HEARTBEAT_LIVENESS,
         locust.runners.HEARTBEAT_DEAD_INTERNAL) = saved
    with pytest.raises(SystemExit):
        ns.parse_args(["--worker-timeout", "0.5"])


def test_worker_local_options_survive_a_spawn_message_applied_before_init():
    """A worker connects inside Locust's WorkerRunner constructor, so the
    master's first spawn message can be applied before ``init`` (a CI run: one
    worker's 150 connections all came from 127.0.0.1). The spawn handler
    overwrites every non-Locust option with the master's, as below; the
    worker's own source addresses, target port and worker timeout survive."""
    from types import SimpleNamespace

    from locust import argument_parser as lap

    from loadgen.runtime import Runtime

    def locust_parser() -> argparse.ArgumentParser:
        parser = lap.get_empty_argument_parser()
        lap.setup_parser_arguments(parser)
        add_arguments(parser)
        return parser

    master = vars(locust_parser().parse_args(["--master", "--pace", "2"]))
    worker = locust_parser().parse_args(
        ["--worker", "--source-ips", "127.0.0.4,127.0.0.5", "--target-port", "40001",
         "--worker-timeout", "30", "--pace", "1"])
    # WorkerRunner's "spawn" handler (locust/runners.py), as it runs:
    locust_own = lap.default_args_dict()
    vars(worker).update({k: v for k, v in master.items() if k not in locust_own})
    assert (worker.source_ips, worker.target_port, worker.pace) == ("", 0, 2.0)  # the premise

    rt = Runtime(SimpleNamespace(host="tcp://198.18.250.1:7000", parsed_options=worker))
    assert rt.source_ips == ("127.0.0.4", "127.0.0.5")
    assert rt.target() == ("198.18.250.1", 40001)
    assert rt.options().pace_s == 2.0  # a load option is the master's, as it should be
    assert worker_local(worker, "worker_timeout") == 30.0

    # Not given on the worker's command line: the option's default, not the master's.
    locust_parser().parse_args(["--worker"])
    assert worker_local(SimpleNamespace(source_ips="127.0.0.9", target_port=7), "target_port") == 0


def test_an_echo_sent_before_the_hold_mark_is_not_the_holds():
    """An echo belongs to the window it was sent in: sent in the ramp and
    answered or timed out in the hold, it carries the ramp's wait (C500K: 4
    echoes sent in the ramp timed out 5 s later, in the hold)."""
    import time
    from time import perf_counter

    m = Meter()
    m.start_window(hold=True)
    m.echo_ok(0.5, sent=perf_counter() - 0.5)  # answered now after 0.5 s: sent before the mark
    m.failed("timeout", sent=perf_counter() - 5.0)  # sent 5 s ago, timed out now
    m.failed("ECONNRESET")  # a held connection lost now: the hold's
    time.sleep(0.01)
    m.echo_ok(0.002, sent=perf_counter() - 0.002)  # sent after the mark
    m.failed("timeout", sent=perf_counter() - 0.001)
    assert m.histogram.get_total_count() == 1
    assert m.phases.hold_failures == {"ECONNRESET": 1, "timeout": 1}
    assert m.failures == {"timeout": 2, "ECONNRESET": 1}  # the step keeps them all
    m.start_window()  # a window that is not the hold's mark: no cut
    m.echo_ok(0.5, sent=perf_counter() - 0.5)
    assert m.histogram.get_total_count() == 1
