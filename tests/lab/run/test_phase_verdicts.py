"""Two phases per step: the hold decides the SLO and the plan, the connect
phase gets findings (lab/results/phases.py, lab/run/verdict.py,
lab/analysis/connect.py), and the kernel's SYN-side counters."""

from __future__ import annotations

import io
from pathlib import Path

from lab_fakes import stats, step_record

from contract.limits import BACKLOG, EADDRNOTAVAIL, TIMEOUT
from lab.analysis import connect
from lab.analysis.capacity import SLO, passes, plan_run, slo_of
from lab.analysis.expect import summary
from lab.analysis.headline import headline
from lab.analysis.plan_table import table_rows
from lab.analysis.series import has_accept_rate
from lab.report.html import connect_section, limits_section
from lab.results.reader import load_run
from lab.results.writer import RunRecord, create_run_dir, make_row
from lab.run.kernel import KernelSampler
from lab.run.live import LiveView
from lab.run.verdict import step_limit
from lab.scenario.loader import parse_scenario

EPOLL = parse_scenario("servers: [epoll]\nload: {steps: [10000, 50000, 100000]}\n", "c.yaml")
QUIET = {"listen_overflows": 0, "listen_drops": 0, "tcp_timeouts": 9830, "syn_drops": 0}


def _record(step: int, target: int, connected: int, *, connect_failed: int = 0,
            retries: int = 0, hold_failures: dict[str, int] | None = None,
            echoes: int = 4896, connect_p99: float = 3.0, **extra) -> dict:
    """A format-7 step record: connect failures counted in ``failures`` too
    (the loadgen does), the hold's own failures and attempts apart."""
    failures = {TIMEOUT: connect_failed + sum((hold_failures or {}).values())}
    rec = step_record(step, target, connected, echo_count=echoes,
                      failures={k: n for k, n in failures.items() if n},
                      connect_failures={TIMEOUT: connect_failed} if connect_failed else {})
    rec.update(connect_attempts=target + connect_failed, connect_count=target,
               connect_retries=retries, connect_p50_ms=1.0, connect_p99_ms=connect_p99,
               connect_max_ms=connect_p99, t_connect_start=rec["t_start"],
               t_connect_end=rec["t_ramp_end"], hold_failures=hold_failures or {},
               hold_attempts=echoes + sum((hold_failures or {}).values()),
               **{"connects_per_s": 0.0, "arrivals": 0, "dropped": 0, "closes": 0, **extra})
    return rec


def _row(record: dict, evidence: dict | None = None, scenario=EPOLL) -> dict:
    evidence = {**QUIET, **(evidence or {})}
    limit = step_limit(event=None, death=None, lost=None, record=record, evidence=evidence)
    return make_row(scenario.servers[0], record, stats(record["t_end"], record["connected"]),
                    limit, 4096, active_users=record["target_users"], evidence=evidence)


def _run(tmp_path: Path, rows: list[dict], scenario=EPOLL):
    record = RunRecord(create_run_dir(tmp_path, "phases"), scenario, "local")
    for row in rows:
        record.add_row(row)
    record.set_model(rows[0]["model"], kind="epoll")
    record.finish(complete=True, interrupted=False)
    return load_run(record.run_dir)


def test_retried_connect_timeouts_do_not_fail_the_hold(tmp_path):
    """The c100k step of issue 18: 1,220 connects timed out once and were
    retried, all 50,000 connected, no echo failed in the hold."""
    ramp = _row(_record(1, 50000, 50000, connect_failed=1220, retries=1220,
                        connect_p99=1012.0))
    assert ramp["limit"] is None
    assert ramp["error_rate"] == 0.0  # the old rule said 1220 / (4896 + 1220) = 19.95%
    assert ramp["connect_error_rate"] == 1220 / 51220
    assert ramp["connect_retries"] == 1220 and ramp["connect_s"] == 5.0
    assert passes(ramp, SLO()) == []
    run = _run(tmp_path, [_row(_record(0, 10000, 10000)), ramp,
                          _row(_record(2, 100000, 100000))])
    (plan,) = plan_run(run, slo_of(run))
    assert plan.binds == "none" and plan.capacity == 100000
    assert headline(run)[0].startswith("epoll met the SLO at every step up to 100,000")
    assert connect.finding(ramp, SLO()) == "connect p99 1,012 ms: 1,220 connects retried"


def test_echoes_lost_in_the_ramp_are_a_connect_finding_not_the_holds(tmp_path):
    """C500K's last step: 357 echoes sent during the ramp to 500,000 timed out
    (5 s); the hold that followed was clean. The step meets the SLO; the
    connect phase's finding says what the ramp cost the held connections."""
    rec = _record(2, 100000, 100000, connect_p99=1077.0)
    rec["failures"] = {TIMEOUT: 357}  # neither a connect's nor the hold's
    ramp = _row(rec)
    assert ramp["ramp_failures"] == 357 and ramp["error_rate"] == 0.0
    assert passes(ramp, SLO()) == []
    assert connect.finding(ramp, SLO()) == (
        "connect p99 1,077 ms: 357 echoes or held connections failed outside the hold "
        "(the ramp's; the SLO judges the hold)")
    held = _row(_record(1, 50000, 50000, connect_failed=20, hold_failures={TIMEOUT: 3}))
    assert held["ramp_failures"] == 0  # 23 failures: 20 connects, 3 in the hold
    old = _record(1, 50000, 50000)
    del old["hold_failures"]  # a format-6 loadgen's record
    assert _row(old)["ramp_failures"] is None


def test_hold_failures_still_fail_the_step_and_the_headline_names_that_step(tmp_path):
    bad = _row(_record(1, 50000, 50000, hold_failures={TIMEOUT: 200}))
    assert bad["error_rate"] == 200 / 5096
    run = _run(tmp_path, [_row(_record(0, 10000, 10000)), bad,
                          _row(_record(2, 100000, 100000))])
    (plan,) = plan_run(run, slo_of(run))
    assert plan.binds == "errors" and plan.failing_step == 1 and plan.capacity == 10000
    assert headline(run)[0].startswith("epoll missed the SLO at step 1 (50,000 connections)")
    assert table_rows([plan])[1][0][2] == "errors (hold)"


def test_a_full_accept_queue_with_everything_connected_is_a_finding_not_a_limit():
    """listen(5) at 600 connections: every connection was made, late."""
    rec = _record(0, 600, 600, connect_p99=1012.0)
    row = _row(rec, {"listen_overflows": 1204, "listen_drops": 1204, "syn_drops": 1204})
    assert row["limit"] is None and passes(row, SLO()) == []
    assert connect.finding(row, SLO()) == (
        "connect p99 1,012 ms: the accept queue overflowed 1,204 times")


def test_a_full_accept_queue_that_left_connections_unmade_keeps_backlog():
    row = _row(_record(0, 600, 199), {"listen_overflows": 800, "listen_drops": 800})
    assert row["limit"] == BACKLOG
    assert connect.binds_phase(BACKLOG) == "backlog (connect)"


def test_client_port_exhaustion_is_a_limit_only_when_the_load_stayed_short():
    short = _record(0, 30000, 28000)
    short["connect_failures"] = {EADDRNOTAVAIL: 2000}
    assert _row(short)["limit"] == EADDRNOTAVAIL
    made = _record(0, 30000, 30000)
    made["connect_failures"] = {EADDRNOTAVAIL: 20}
    assert _row(made)["limit"] is None


def test_the_connect_slo_is_a_finding_and_leaves_the_hold_verdict_alone(tmp_path):
    strict = SLO(connect_p99_ms=500.0)
    row = _row(_record(0, 600, 600, connect_p99=1012.0))
    assert passes(row, strict) == []
    assert connect.finding(row, strict) == (
        "connect p99 1,012 ms — missed the connect SLO (connect p99 1,012 ms > 500 ms)")
    assert connect.finding(row, SLO()) is None  # nothing retried or dropped, no connect SLO
    run = _run(tmp_path, [row])
    entry = summary(run, [], 0)["models"]["epoll"]["connect"]
    assert entry["p99_ms"] == 1012.0 and entry["worst_step"] == 0 and entry["slo_met"] is None


def test_json_connect_object_carries_each_step_finding(tmp_path):
    rows = [_row(_record(0, 600, 600, connect_p99=1012.0), {"listen_overflows": 9,
                                                              "syn_drops": 9}),
            _row(_record(1, 900, 900))]
    entry = summary(_run(tmp_path, rows), [], 0)["models"]["epoll"]["connect"]
    assert entry["findings"] == [
        {"step": 0, "finding": "connect p99 1,012 ms: the accept queue overflowed 9 times"}]
    assert entry["syn_drops"] == 9


def test_the_console_prints_the_connect_finding_under_the_step():
    row = _row(_record(0, 600, 600, connect_p99=1012.0), {"listen_overflows": 1204,
                                                          "syn_drops": 1204})
    out = io.StringIO()
    LiveView(out, tty=False).step_done(row, connect.finding(row, SLO()))
    first, second = out.getvalue().splitlines()
    assert first.startswith("  epoll step 0: 600/600 connected") and "limit" not in first
    assert second == ("    connect phase: connect p99 1,012 ms: the accept queue overflowed "
                      "1,204 times")


def _netstat(path: Path, values: dict[str, int]) -> None:
    names = " ".join(values)
    numbers = " ".join(str(v) for v in values.values())
    path.write_text(f"TcpExt: {names}\nTcpExt: {numbers}\nIpExt: InNoRoutes\nIpExt: 0\n")
    (path.parent / "snmp").write_text("Tcp: RtoAlgorithm RetransSegs\nTcp: 1 10\n")


def test_syn_side_counters_grow_over_the_step(tmp_path):
    net = tmp_path / "net"
    net.mkdir()
    base = {"ListenOverflows": 3, "ListenDrops": 3, "TCPBacklogDrop": 0, "TCPTimeouts": 1,
            "TCPReqQFullDrop": 10, "TCPReqQFullDoCookies": 0, "SyncookiesSent": 5,
            "SyncookiesRecv": 0, "SyncookiesFailed": 0}
    sampler = KernelSampler(net)
    _netstat(net / "netstat", base)
    sampler.sample(100.0)
    _netstat(net / "netstat", {**base, "ListenOverflows": 40, "ListenDrops": 45,
                               "TCPReqQFullDrop": 17, "SyncookiesSent": 105})
    sampler.sample(110.0)
    got = sampler.step(100.0, 110.0)
    assert got["listen_overflows"] == 37 and got["listen_drops"] == 42
    assert got["syn_drops"] == 42 + 7  # TCPReqQFullDrop + ListenDrops
    assert got["syncookies_sent"] == 100


def test_syn_drops_stay_empty_when_the_kernel_does_not_count_them(tmp_path):
    net = tmp_path / "net"
    net.mkdir()
    _netstat(net / "netstat", {"ListenOverflows": 1, "ListenDrops": 1})
    sampler = KernelSampler(net)
    sampler.sample(1.0)
    got = sampler.step(1.0, 2.0)
    assert got["listen_drops"] == 0 and got["syn_drops"] is None  # never a made-up 0


CHURN = parse_scenario("servers: [epoll]\nload: {user: churn, connect_rate: 400, "
                       "steps: [50, 200]}\n", "churn.yaml")


def test_a_churn_step_is_not_judged_by_connections_held(tmp_path):
    """Churn users close after their message: few are connected when the
    hold ends, and a full accept queue is what the accept rate measures."""
    records = [_record(0, 50, 3, connects_per_s=380.0), _record(1, 200, 12, connects_per_s=250.0)]
    rows = []
    for rec in records:
        evidence = {**QUIET, "listen_overflows": 40, "listen_drops": 40}
        limit = step_limit(event=None, death=None, lost=None, record=rec, evidence=evidence,
                           churn=True)
        assert limit is None
        rows.append(make_row(CHURN.servers[0], rec, stats(rec["t_end"], 3), limit, 4096,
                             evidence=evidence))
    assert passes(rows[0], SLO(), churn=True) == [] and passes(rows[0], SLO()) != []
    run = _run(tmp_path, rows, CHURN)
    (plan,) = plan_run(run, slo_of(run))
    assert plan.binds == "none" and plan.connects_per_s == 380.0
    head, cells = table_rows([plan])
    assert head[-1] == "connects/s @SLO" and cells[0][-1] == "380"
    assert "; it accepted 380 connects/s within the SLO at p99 2.0 ms" in headline(run)[0]


def test_client_port_exhaustion_is_the_churn_load_limit_even_when_users_are_few():
    rec = _record(0, 200, 5)
    rec["connect_failures"] = {EADDRNOTAVAIL: 3}
    assert step_limit(event=None, death=None, lost=None, record=rec, evidence=QUIET,
                      churn=True) == EADDRNOTAVAIL


def test_an_echo_run_plan_has_no_connects_column(tmp_path):
    run = _run(tmp_path, [_row(_record(0, 10000, 10000, connects_per_s=5.0))])
    (plan,) = plan_run(run, slo_of(run))
    assert plan.connects_per_s is None and "connects/s @SLO" not in table_rows([plan])[0]


def test_slo_of_keeps_the_connect_slo(tmp_path):
    scenario = parse_scenario("servers: [epoll]\nslo: {connect_p99_ms: 300}\n"
                              "load: {steps: [10]}\n", "s.yaml")
    run = _run(tmp_path, [_row(_record(0, 10, 10), scenario=scenario)], scenario)
    assert slo_of(run).connect_p99_ms == 300.0 and slo_of(run, 5.0).connect_p99_ms == 300.0


def test_the_report_shows_the_connect_phase_and_the_server_count_at_a_limit(tmp_path):
    found = _row(_record(0, 600, 600, connect_p99=1012.0), {"listen_overflows": 1204,
                                                            "syn_drops": 1204})
    wall = _row(_record(1, 900, 700), {"listen_overflows": 50, "listen_drops": 50})
    wall["server_connections"] = 650  # the clients' count has refusals still on their way
    run = _run(tmp_path, [found, wall])
    section = connect_section(run)
    assert "<h2>Connect phase</h2>" in section
    assert "the accept queue overflowed 1,204 times" in section
    limits = limits_section(run)
    assert ">650<" in limits
    assert ">700<" not in limits
    assert not has_accept_rate(run)  # no row measured a connect rate: no accept chart


def test_the_finding_names_the_accept_queue_size_and_its_peak():
    """issue 18's sentence: "the accept queue of 5 overflowed N times", with
    the kernel's size and the most seen waiting (lab/run/accept_queue.py)."""
    row = _row(_record(0, 600, 600, connect_p99=1012.0),
               {"listen_overflows": 1204, "syn_drops": 1204, "accept_queue_max": 5,
                "accept_queue_peak": 6})
    assert row["accept_queue_max"] == 5 and row["accept_queue_peak"] == 6
    assert connect.finding(row, SLO()) == (
        "connect p99 1,012 ms: the accept queue of 5 overflowed 1,204 times "
        "(6 waiting at most, sampled)")


def test_eaddrnotavail_is_named_the_clients_limit_in_the_finding_headline_and_console(tmp_path):
    short = _record(0, 30000, 28232)
    short["connect_failures"] = {EADDRNOTAVAIL: 1768}
    short["failures"] = {EADDRNOTAVAIL: 1768}
    row = _row(short, {"load_ports_max": 28232, "load_time_wait": 0})
    assert row["limit"] == EADDRNOTAVAIL
    assert row["load_ports_max"] == 28232
    assert connect.finding(row, SLO()) == (
        "connect p99 3.0 ms: 1,768 connect attempts failed; 1,768 connects failed with "
        "EADDRNOTAVAIL: the client ran out of source ports (28,232 ports in use on one source "
        "address), the client's limit, not the server's")
    run = _run(tmp_path, [row])
    assert headline(run)[0].startswith(
        "epoll stopped at 28,232 connections: EADDRNOTAVAIL, the client's limit (its source "
        "ports ran out), not the server's")
    (plan,) = plan_run(run, slo_of(run))
    assert plan.binds == EADDRNOTAVAIL and "client ran out" in plan.why
    assert table_rows([plan])[1][0][2] == "EADDRNOTAVAIL (connect)"


def test_a_churn_step_line_says_its_accept_rate_not_connections_held():
    rec = _record(1, 200, 3, connects_per_s=987.0, dropped=12)
    row = make_row(CHURN.servers[0], rec, stats(rec["t_end"], 3), None, 4096)
    out = io.StringIO()
    LiveView(out, tty=False).step_done(row, None, churn=True)
    line = out.getvalue()
    assert line.startswith("  epoll step 1: 987 connects/s by 200 users, 3 in flight at the "
                           "end, 12 arrivals dropped")
    assert "connected" not in line


def test_a_churn_plan_has_no_memory_per_connection(tmp_path):
    rows = []
    for i, (target, held, rss) in enumerate([(50, 3, 20_000_000), (200, 40, 21_000_000)]):
        rec = _record(i, target, held, connects_per_s=300.0 + i)
        row = make_row(CHURN.servers[0], rec, stats(rec["t_end"], held), None, 4096 * held,
                       evidence=QUIET)
        rows.append({**row, "server_rss_bytes": rss})
    (plan,) = plan_run(_run(tmp_path, rows, CHURN), SLO())
    assert plan.churn and plan.rss_per_1000 is None and plan.kernel_per_1000 is None
    head, cells = table_rows([plan])
    assert cells[0][head.index("server RSS /1000")] == "n/a: churn"
    assert cells[0][head.index("kernel /1000")] == "n/a: churn"
    assert cells[0][head.index("max conns @SLO")] == "n/a: churn"
    assert cells[0][head.index("cores /1000")] == "n/a: churn"
    assert plan.host_capacity == {} and cells[0][head.index("per host")] == "–"


CHURN2 = parse_scenario("servers: [select, epoll]\nload: {user: churn, connect_rate: 1500, "
                        "steps: [50, 200]}\n", "churn2.yaml")


def test_a_churn_headline_compares_cpu_among_models_that_accepted_within_the_slo(tmp_path):
    """On Docker, churn.yaml's select had 0 connections open at its steps' ends and
    85 µs per message against epoll's 92 µs: select is the least, whatever it held."""
    record = RunRecord(create_run_dir(tmp_path, "churn2"), CHURN2, "local")
    for spec, open_at_end, cpu in ((CHURN2.servers[0], 0, (0.5, 1.35)),
                                   (CHURN2.servers[1], 1, (0.5, 1.42))):
        for i in (0, 1):
            rec = _record(i, (50, 200)[i], open_at_end, echoes=10000, connects_per_s=1500.0)
            row = make_row(spec, rec, stats(rec["t_end"], open_at_end), None, 4096,
                           evidence=QUIET)
            record.add_row({**row, "server_cpu_s": cpu[i]})
        record.set_model(spec.name, kind=spec.model)
    record.finish(complete=True, interrupted=False)
    select, epoll = headline(load_run(record.run_dir))
    assert "it accepted 1,500 connects/s within the SLO" in select
    assert select.endswith("85 µs of CPU per message (the least).")
    assert "92 µs of CPU per message, 1.1× select's" in epoll


def test_the_run_summary_of_a_churn_model_gives_its_accept_rate():
    from lab.cli.run_cmd import summarize
    from lab.run.outcome import ModelOutcome

    rec = _record(1, 200, 0, connects_per_s=1499.8)
    outcome = ModelOutcome(rows=[make_row(CHURN.servers[0], rec, stats(rec["t_end"], 0), None,
                                          4096)])
    assert summarize(outcome, churn=True) == (
        "ran every step; last step 1,500 connects/s, errors 0.0%")
    assert "0/200 connected" in summarize(outcome)


def test_the_run_summary_at_a_wall_says_what_the_server_held():
    """The clients' count at select's wall also has sockets in its accept queue
    and refusals on their way: the summary says the server's own count too."""
    from lab.cli.run_cmd import summarize
    from lab.run.outcome import ModelOutcome

    wall = {"step": 1, "target_connections": 1200, "connected": 1097,
            "server_connections": 1019, "error_rate": 0.0}
    outcome = ModelOutcome(rows=[wall], limit="FD_SETSIZE", stopped_at_step=1)
    assert summarize(outcome) == ("stopped at step 1 by FD_SETSIZE; last step 1097/1200 "
                                  "connected (the server held 1019), errors 0.0%")
    outcome.rows = [{**wall, "connected": 1019}]
    assert "(the server held" not in summarize(outcome)
