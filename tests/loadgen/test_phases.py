"""The connect phase and the hold phase measured apart, and churn (issue 18):
the connect histogram and its exact merge, retries, hold-only failures, the
arrival schedule of the open model, and ChurnUser for real."""

from __future__ import annotations

import _socket
import argparse
import errno
import random
from time import perf_counter
from types import SimpleNamespace

import gevent
import pytest
from locust_runs import finish, load_args, read_steps, start, tail
from rogue_servers import RogueServer, stall_once_then_echo, unused_port
from serverproc import ServerProcess
from test_client import client_for
from test_runs import RUN_TIMEOUT, no_tracebacks
from test_users import run_user

import loadgen.client
from loadgen.arrivals import IDLE_TICK_S, ArrivalClock, Arrivals, share_of_rate
from loadgen.meter import Meter, Snapshot, merge
from loadgen.options import LoadOptions, add_arguments
from loadgen.users import ChurnUser

pytestmark = pytest.mark.locust  # imports Locust (gevent patches the stdlib); loads nothing

echo = stall_once_then_echo(0)


# -- the connect phase in the meter and the merge -------------------------------------

def meter_with_connects(latencies_ms: list[float]) -> Meter:
    m = Meter()
    for ms in latencies_ms:
        m.connect_started()
        m.phases.connect_ok(ms / 1000)
    return m


def test_connect_histograms_merge_exactly_over_workers():
    rng = random.Random(18)
    fast = [rng.uniform(0.05, 2) for _ in range(3000)]
    slow = [rng.uniform(1000, 1100) for _ in range(100)]  # SYNs retried after 1 s
    a = Snapshot.from_message(meter_with_connects(fast).snapshot(users=30).to_message())
    b = Snapshot.from_message(meter_with_connects(slow).snapshot(users=1).to_message())
    a.phases.update(t_connect_start=100.0, t_connect_end=101.5)
    b.phases.update(t_connect_start=100.2, t_connect_end=103.0)
    rec = merge([a, b])
    everything = sorted(fast + slow)
    assert rec["connect_count"] == 3100 == rec["connect_attempts"]
    assert rec["connect_p99_ms"] == pytest.approx(everything[int(0.99 * 3100) - 1], rel=0.002)
    assert rec["connect_p90_ms"] == pytest.approx(everything[int(0.90 * 3100) - 1], rel=0.002)
    assert rec["connect_p50_ms"] == pytest.approx(everything[3100 // 2], rel=0.01)
    assert rec["connect_max_ms"] == pytest.approx(max(slow), rel=0.002)
    assert (rec["t_connect_start"], rec["t_connect_end"]) == (100.0, 103.0)
    # the echo latencies are untouched by connects
    assert rec["echo_count"] == 0 and rec["p99_ms"] is None


def test_no_connect_means_null_connect_fields():
    rec = merge([Snapshot(users=1, window_s=1.0)])
    assert rec["connect_count"] == 0 and rec["connect_p99_ms"] is None
    assert rec["t_connect_start"] is None and rec["t_connect_end"] is None
    assert rec["hold_failures"] == {} and rec["hold_attempts"] == 0


def test_connect_times_are_the_first_attempt_and_the_last_success():
    m = Meter()
    m.connect_started()
    m.connect_failed("timeout")
    first = m.phases.t_connect_start
    assert first is not None and m.phases.t_connect_end is None
    m.connect_started()
    m.phases.connect_ok(0.001)
    snap = m.snapshot(users=1)
    assert snap.phases["t_connect_start"] == first <= snap.phases["t_connect_end"]
    assert m.phases.t_connect_start is None  # the next step starts afresh


def test_hold_failures_leave_connect_failures_and_the_ramp_out():
    m = Meter()
    for _ in range(3):  # the ramp: connects timing out, one echo lost
        m.connect_started()
        m.connect_failed("timeout")
    m.failed("ECONNRESET")
    m.start_window()  # the hold mark
    m.connect_started()
    m.connect_failed("ECONNREFUSED")  # a connect in the hold: still the connect phase's
    m.failed("timeout")
    for _ in range(5):
        m.echo_ok(0.001)
    rec = merge([Snapshot.from_message(m.snapshot(users=4).to_message())])
    assert rec["hold_failures"] == {"timeout": 1}
    assert rec["hold_attempts"] == 6 and rec["echo_count"] == 5
    # the existing keys keep their meaning: the whole step, every kind
    assert rec["failures"] == {"ECONNREFUSED": 1, "ECONNRESET": 1, "timeout": 4}
    assert rec["connect_failures"] == {"ECONNREFUSED": 1, "timeout": 3}


def test_hold_failures_add_up_over_workers():
    a = Snapshot(window_s=1.0, phases={"hold_failures": {"timeout": 2}})
    b = Snapshot(window_s=1.0, phases={"hold_failures": {"timeout": 1, "mismatch": 1}})
    rec = merge([a, b])
    assert rec["hold_failures"] == {"mismatch": 1, "timeout": 3} and rec["hold_attempts"] == 4


# -- the client: connect latency, retries, EADDRNOTAVAIL --------------------------------

def test_a_connect_after_a_failed_one_is_a_retry(env):
    c = client_for(env, ("127.0.0.1", unused_port()))
    assert not c.connect() and not c.connect() and not c.connect()
    phases = c.meter.phases
    assert (phases.connect_retries, c.meter.connect_attempts) == (2, 3)
    assert c.meter.connect_failures == {"ECONNREFUSED": 3} and phases.hold_failures == {}
    assert phases.connect_histogram.get_total_count() == 0


def test_a_successful_connect_is_timed_and_ends_the_retries(env):
    with RogueServer(echo) as srv:
        c = client_for(env, srv.address)
        c._connect_failed = True  # as if the previous attempt had failed
        assert c.connect() and c.echo()
        c.close()
        assert c.connect()  # a reconnect after a clean close: not a retry
        c.close()
    phases = c.meter.phases
    assert phases.connect_retries == 1 and phases.window_connects == 2
    assert phases.connect_histogram.get_total_count() == 2
    assert 0 < phases.connect_histogram.get_max_value() < 1_000_000  # us: loopback, no retry


def test_out_of_source_ports_is_an_EADDRNOTAVAIL_connect_failure(env, monkeypatch):  # noqa: F811
    """What connect() says when no source port is free (port range in use, or
    in TIME_WAIT): counted in the connect phase, never in the hold's."""

    class NoPortLeft(_socket.socket):
        def connect_ex(self, address):
            return errno.EADDRNOTAVAIL

    monkeypatch.setattr(loadgen.client, "_socket", SimpleNamespace(
        **{k: getattr(_socket, k) for k in dir(_socket) if k.isupper()}, socket=NoPortLeft))
    c = client_for(env, ("127.0.0.1", unused_port()))
    assert not c.connect()
    assert c.meter.connect_failures == {"EADDRNOTAVAIL": 1} == c.meter.failures
    assert c.meter.phases.hold_failures == {} and c.budget.held == 0


# -- the arrival schedule -----------------------------------------------------------------

def test_arrival_clock_releases_what_is_due_even_when_late():
    clock = ArrivalClock(now=0.0)
    assert clock.due(100.0, 0.015) == 1 and clock.credit == pytest.approx(0.5)
    assert clock.wait_s(100.0) == pytest.approx(0.005)
    assert clock.due(100.0, 2.015) == 200  # a tick 2 s late: every arrival due, at once
    assert clock.due(10.0, 2.115) == 1  # a new rate applies from the tick on: 0.5 + 1.0
    assert clock.due(0.0, 3.0) == 0 and clock.credit == 0.0
    assert clock.wait_s(0.0) == IDLE_TICK_S and clock.wait_s(0.001) == IDLE_TICK_S


class FakeTicket:
    def __init__(self) -> None:
        self.taken = False

    def set(self) -> None:
        self.taken = True


def test_an_arrival_without_a_free_user_is_dropped():
    now = [0.0]
    meter = Meter()
    arrivals = Arrivals(meter, lambda own: 100.0 * own, clock=lambda: now[0])
    arrivals.join()
    arrivals.join()  # two users: 200 arrivals/s
    tickets = [FakeTicket() for _ in range(3)]
    arrivals.free.extend(tickets)
    now[0] = 0.5
    arrivals.tick(now[0])
    assert all(t.taken for t in tickets) and not arrivals.free
    assert (meter.phases.arrivals, meter.phases.dropped) == (100, 97)
    rec = merge([meter.snapshot(users=2)])
    assert (rec["arrivals"], rec["dropped"]) == (100, 97)


def test_the_rate_is_shared_by_users():
    assert share_of_rate(300.0, 50, 100) == 150.0  # half the step's users, half the rate
    assert share_of_rate(300.0, 100, 100) == 300.0
    assert share_of_rate(300.0, 10, 0) == 300.0  # no target announced: all of it
    assert share_of_rate(300.0, 0, 100) == 0.0 and share_of_rate(0.0, 5, 5) == 0.0


def test_one_greenlet_keeps_the_rate_on_a_real_clock():
    meter = Meter()
    arrivals = Arrivals(meter, lambda own: 200.0)
    begin = perf_counter()
    arrivals.start()
    gevent.sleep(0.5)
    arrivals.greenlet.kill()
    due = 200 * (perf_counter() - begin)
    # the hub's timers wake late, never early, and a late tick catches up: what is
    # still owed is the time since the last tick (5 ms at this rate, plus its
    # lateness: 20 ms allowed)
    got = meter.phases
    assert due - 200 * 0.025 <= got.arrivals <= due and got.dropped == got.arrivals


# -- options --------------------------------------------------------------------------------

def test_churn_options_parse_and_reject():
    parser = argparse.ArgumentParser(exit_on_error=False)
    add_arguments(parser)
    ns = parser.parse_args(["--messages-per-connection", "3", "--arrival-rate", "250"])
    opts = LoadOptions.from_parsed(ns)
    assert (opts.messages_per_connection, opts.arrival_rate) == (3, 250.0)
    defaults = LoadOptions.from_parsed(parser.parse_args([]))
    assert (defaults.messages_per_connection, defaults.arrival_rate) == (1, 0.0)
    web_ui = {a.dest for a in parser._actions if getattr(a, "include_in_web_ui", False)}
    assert {"messages_per_connection", "arrival_rate"} <= web_ui
    for bad in (["--messages-per-connection", "0"], ["--arrival-rate", "-1"],
                ["--arrival-rate", "fast"]):
        with pytest.raises(argparse.ArgumentError):
            parser.parse_args(bad)


# -- ChurnUser ----------------------------------------------------------------------------

def test_churn_user_closed_model_connects_echoes_and_closes():
    with RogueServer(echo) as srv:
        echoes, failures, meter = run_user(ChurnUser, srv.host, 0.5, pace=0.01,
                                           messages_per_connection=3, arrival_rate=0.0)
    assert failures == []
    phases = meter.phases
    connects = phases.connect_histogram.get_total_count()
    assert phases.closes >= 5 and connects in (phases.closes, phases.closes + 1)  # one open
    assert phases.connect_retries == 0 and phases.arrivals == 0
    assert 3 * phases.closes <= len(echoes) <= 3 * connects


@pytest.mark.slow
@pytest.mark.load  # a real Locust run
@pytest.mark.parametrize("processes", [[], ["--processes", "2"]], ids=["standalone", "2-workers"])
def test_churn_against_epoll_at_an_arrival_rate(tmp_path, processes):
    """Open model, 200 connects/s for the whole load over 20 users; with two
    workers each takes its share (10 of the step's 20 users: 100/s), not all
    of it (the rate came out 300/s when one worker missed the step's target)."""
    results, log = tmp_path / "steps.jsonl", tmp_path / "log"
    rate, users = 200, 20
    with ServerProcess("epoll", "--nofile", "max") as srv:
        proc = start([*load_args(f"tcp://{srv.host}:{srv.port}", f"{users}:3s", results,
                                 "--arrival-rate", str(rate), "--messages-per-connection", "1"),
                      *processes, "--headless", "--only-summary", "ChurnUser"], log)
        assert finish(proc, log, RUN_TIMEOUT) == 0, tail(log)
    (rec,) = read_steps(results)
    window = rec["t_end"] - rec["t_hold"]
    assert rec["connect_failures"] == {} and rec["failures"] == {} and rec["hold_failures"] == {}
    # An attempt is counted when it starts: one still in flight when a worker
    # reports the step has no outcome yet (609 connects of 610 attempts seen
    # with two workers, no failure); each user has at most one in flight.
    in_flight = rec["connect_attempts"] - rec["connect_count"]
    assert 0 <= in_flight <= users and rec["connect_retries"] == 0, rec
    # at most the arrivals of the window, plus the users' arrivals from before it
    assert 0.25 * rate <= rec["connects_per_s"] <= rate * 1.05 + users / window, rec
    assert rec["arrivals"] >= 0.25 * rate * window and 0 <= rec["dropped"] <= rec["arrivals"]
    assert 0 < rec["closes"] <= rec["connect_count"]
    assert 0 < rec["connect_p50_ms"] <= rec["connect_p99_ms"] <= rec["connect_max_ms"]
    assert rec["t_start"] <= rec["t_connect_start"] <= rec["t_connect_end"] <= rec["t_end"] + 1
    assert rec["echo_count"] > 0 and rec["hold_attempts"] == rec["echo_count"]
    assert rec["workers"] == (2 if processes else 1)
    no_tracebacks(log)


@pytest.mark.slow
@pytest.mark.load  # a real lab run
def test_a_full_accept_queue_shows_in_the_connect_phase_only(tmp_path):
    """A server that starts accepting 1 s after the burst, its queue 2 deep:
    the kernel drops the other 4 SYNs, those connects time out (0.5 s) and are
    retried (at least twice each: 0.5 s, then 1.2 s), and all of it happens
    inside the hold window; yet the hold's own failures stay empty and every
    user connects. (Retries that come back together can overflow the queue
    again while the thread-per-connection server catches up: 8 of 10 users
    took until 2.8 s once, hence the 4 s hold.)"""
    results, log = tmp_path / "steps.jsonl", tmp_path / "log"
    with RogueServer(echo, backlog=1, accept_late_s=1.0) as srv:
        proc = start([*load_args(srv.host, "6:4s", results, "--connect-timeout", "0.5",
                                 "--pace", "0.2"),
                      "--headless", "--only-summary", "EchoUser"], log)
        code = finish(proc, log, RUN_TIMEOUT)
    assert code in (0, 1), tail(log)  # 1: Locust saw failures
    (rec,) = read_steps(results)
    timeouts = rec["connect_failures"].get("timeout", 0)
    assert set(rec["connect_failures"]) == {"timeout"} and timeouts >= 4, rec
    assert rec["failures"] == rec["connect_failures"]  # no echo failed
    assert rec["hold_failures"] == {}, rec
    assert 1 <= rec["connect_retries"] <= timeouts
    assert rec["connect_count"] == rec["connected"] == 6
    assert rec["t_connect_end"] - rec["t_connect_start"] >= 0.9  # the phase spans the stall
    # the hold waited for the connects in flight at most --connect-timeout ...
    assert rec["t_ramp_end"] <= rec["t_hold"] <= rec["t_ramp_end"] + 0.5 + 0.3, rec
    assert rec["t_connect_end"] > rec["t_hold"]  # ... and the retries reach into it
    assert rec["echo_count"] > 0 and rec["hold_attempts"] == rec["echo_count"]
    no_tracebacks(log)
