"""The run loop against a scripted backend: rows, limits, crashes, interrupts."""

from __future__ import annotations

import io
import json
import time

import pytest
from lab_fakes import T0, FakeBackend, Script, stats, step_record

from lab.errors import BackendError, Interrupted
from lab.results.writer import COLUMNS, read_steps_csv
from lab.run.live import LiveView
from lab.run.loop import run_scenario
from lab.run.poller import stops_model
from lab.scenario.loader import parse_scenario

SCENARIO = parse_scenario("servers: [select, epoll]\nload: {hold: 5s, steps: [200, 1200]}\n",
                          "fake.yaml")


def _fd_setsize_script() -> Script:
    return Script(
        steps=[step_record(0, 200, 200), step_record(1, 1200, 1017,
                                                     connect_failures={"ECONNREFUSED": 183},
                                                     failures={"ECONNREFUSED": 183})],
        events=[stats(T0 + 9.5, 200), stats(T0 + 10.2, 200),
                {"event": "limit", "time": T0 + 15.0, "kind": "FD_SETSIZE", "fd": 1024,
                 "connections": 1017},
                stats(T0 + 19.8, 1017, rss=12_000_000), stats(T0 + 20.3, 1017)])


def _holding_script() -> Script:
    return Script(steps=[step_record(0, 200, 200), step_record(1, 1200, 1200)],
                  events=[stats(T0 + 9.9, 200), stats(T0 + 19.9, 1200), stats(T0 + 20.4, 1200)])


def _run(tmp_path, scripts, scenario=SCENARIO, **kw):
    stream = io.StringIO()
    backend = FakeBackend(scripts)
    run_dir, outcomes = run_scenario(scenario, backend, tmp_path, live=LiveView(stream, tty=False),
                                     poll_s=0.001, report=kw.get("report", lambda d, live: None))
    return backend, run_dir, outcomes, stream.getvalue()


def test_limit_stops_a_model_and_the_next_one_runs(tmp_path):
    backend, run_dir, outcomes, out = _run(
        tmp_path, {"select": _fd_setsize_script(), "epoll": _holding_script()})
    rows = read_steps_csv(run_dir / "steps.csv")
    assert list(rows[0]) == list(COLUMNS)
    assert [(r["model"], r["step"], r["connected"], r["limit"]) for r in rows] == [
        ("select", "0", "200", ""), ("select", "1", "1017", "FD_SETSIZE"),
        ("epoll", "0", "200", ""), ("epoll", "1", "1200", "")]
    select_1 = rows[1]
    assert select_1["server_connections"] == "1017"
    assert select_1["server_rss_bytes"] == "12000000"  # the stats at/before t_end, not after
    assert select_1["failures"] == "183" and select_1["connect_failures"] == "183"
    assert select_1["failure_kinds"] == "ECONNREFUSED=183"
    assert float(select_1["error_rate"]) == pytest.approx(183 / 283)
    assert select_1["server_cpu_s"] == "2"
    run = json.loads((run_dir / "run.json").read_text())
    assert run["complete"] is True and run["interrupted"] is False
    assert run["models"]["select"]["limit"] == "FD_SETSIZE"
    assert run["models"]["select"]["stopped_at_step"] == 1
    assert run["models"]["epoll"]["stopped_at_step"] is None
    assert run["models"]["epoll"]["final"]["event"] == "final"
    assert run["unapplied"] == ["servers[0].limits.memory: fake cannot"]
    assert len(run["rows"]) == 4 and run["rows"][1]["limit"] == "FD_SETSIZE"
    assert backend.cleaned >= 1 and all(load.stopped for load in backend.loads)
    assert "stopped at step 1 (FD_SETSIZE)" in out


def test_logs_keep_every_event_and_step_record(tmp_path):
    _, run_dir, _, _ = _run(tmp_path, {"select": _fd_setsize_script(),
                                       "epoll": _holding_script()})
    events = (run_dir / "logs/select.events.jsonl").read_text().splitlines()
    assert [json.loads(e)["event"] for e in events].count("limit") == 1
    steps = (run_dir / "logs/epoll.steps.jsonl").read_text().splitlines()
    assert [json.loads(s)["target_users"] for s in steps] == [200, 1200]
    assert (run_dir / "scenario.yaml").read_text().startswith("name: fake")


def test_crash_is_named_with_log_tail_and_run_goes_on(tmp_path):
    crashing = _holding_script()
    crashing.crash_after = 1  # dies once step 0 has ended, during step 1
    crashing.steps[1]["t_end"] = time.time() + 3600  # step 1 ends after the death
    _, run_dir, outcomes, _ = _run(tmp_path, {"select": crashing, "epoll": _holding_script()})
    run = json.loads((run_dir / "run.json").read_text())
    assert run["models"]["select"]["limit"] == "crash"
    assert "fake server crashed" in run["models"]["select"]["log_tail"]
    assert run["models"]["select"]["exit_code"] == -9
    rows = read_steps_csv(run_dir / "steps.csv")
    # the death belongs to the step in progress (1), not to the one that ended before it
    assert [(r["model"], r["limit"]) for r in rows] == [
        ("select", ""), ("select", "crash"), ("epoll", ""), ("epoll", "")]
    assert outcomes["epoll"].stopped_at_step is None


def test_server_that_cannot_start_is_recorded_and_skipped(tmp_path):
    _, run_dir, outcomes, out = _run(tmp_path, {"select": Script(start_error="no READY line"),
                                                "epoll": _holding_script()})
    run = json.loads((run_dir / "run.json").read_text())
    assert run["models"]["select"]["error"] == "no READY line"
    assert run["models"]["select"]["limit"] == "crash"
    assert len(outcomes["epoll"].rows) == 2
    assert "select: FAILED: no READY line" in out


def test_run_fails_when_nothing_could_be_measured(tmp_path):
    with pytest.raises(BackendError, match="no server could be measured"):
        _run(tmp_path, {"select": Script(start_error="boom"), "epoll": Script(start_error="x")})
    (run_dir,) = tmp_path.iterdir()
    assert json.loads((run_dir / "run.json").read_text())["complete"] is True


def test_interrupt_keeps_finished_steps_and_marks_run_incomplete(tmp_path):
    script = _holding_script()
    script.interrupt_after = 1
    reports = []
    with pytest.raises(Interrupted) as info:
        _run(tmp_path, {"select": script, "epoll": _holding_script()},
             report=lambda d, live: reports.append(d))
    assert info.value.exit_code == 130
    (run_dir,) = tmp_path.iterdir()
    run = json.loads((run_dir / "run.json").read_text())
    assert run["complete"] is False and run["interrupted"] is True
    assert run["finished"] is not None
    assert len(read_steps_csv(run_dir / "steps.csv")) == 1 == len(run["rows"])
    assert reports == [run_dir]


def test_load_side_limit_named_when_server_reports_none(tmp_path):
    script = _holding_script()
    script.steps[1] = step_record(1, 1200, 900, connect_failures={"EADDRNOTAVAIL": 300},
                                  failures={"EADDRNOTAVAIL": 300})
    _, run_dir, outcomes, _ = _run(tmp_path, {"select": _fd_setsize_script(), "epoll": script})
    assert outcomes["epoll"].limit == "EADDRNOTAVAIL"
    assert outcomes["epoll"].stopped_at_step == 1


def test_report_failure_keeps_results(tmp_path):
    def broken(run_dir, live):
        from lab.run.loop import write_report_safely
        return write_report_safely(run_dir / "missing", live)
    _, run_dir, _, _ = _run(tmp_path, {"select": _fd_setsize_script(),
                                       "epoll": _holding_script()}, report=broken)
    assert len(read_steps_csv(run_dir / "steps.csv")) == 4


def test_stops_model_rules():
    row = {"limit": "FD_SETSIZE", "connected": 1017, "target_connections": 1200}
    assert stops_model(row, server_dead=False)
    assert not stops_model({**row, "connected": 1200}, server_dead=False)
    assert not stops_model({**row, "limit": None}, server_dead=False)
    assert stops_model({**row, "limit": None}, server_dead=True)


def test_load_that_exits_early_is_an_error_but_keeps_its_rows(tmp_path):
    script = _holding_script()
    script.steps = script.steps[:1]  # the master exits after one of two steps
    _, run_dir, outcomes, _ = _run(tmp_path, {"select": script, "epoll": _holding_script()})
    assert "after 1 of 2 steps" in outcomes["select"].error
    assert len(outcomes["select"].rows) == 1 and len(outcomes["epoll"].rows) == 2
    run = json.loads((run_dir / "run.json").read_text())
    assert "after 1 of 2 steps" in run["models"]["select"]["error"]


def test_unexpected_exception_in_one_model_does_not_end_the_run(tmp_path, monkeypatch):
    backend = FakeBackend({"select": _holding_script(), "epoll": _holding_script()})
    real = backend.start_load

    def flaky(server, ctx, ui=False):
        if server.spec.name == "select":
            raise RuntimeError("network vanished")
        return real(server, ctx, ui=ui)
    monkeypatch.setattr(backend, "start_load", flaky)
    run_dir, outcomes = run_scenario(SCENARIO, backend, tmp_path,
                                     live=LiveView(io.StringIO(), tty=False), poll_s=0.001,
                                     report=lambda d, live: None)
    assert outcomes["select"].error.startswith("RuntimeError: network vanished")
    assert "network vanished" in (run_dir / "logs/select.lab-error.log").read_text()
    assert len(outcomes["epoll"].rows) == 2
