"""Expectations: a scenario says what a run must show; verdicts from the
run's own numbers; exit 3 and a --json summary."""

from __future__ import annotations

import json
import shutil

from paths import TESTS

from lab import cli
from lab.analysis.expect import check, summary
from lab.analysis.headline import headline
from lab.results.reader import load_run

GOLDEN = TESTS / "data/runs/20261128-060017-select-poll-epoll"


def _with_expect(tmp_path, expect, groups=None):
    run_dir = tmp_path / GOLDEN.name
    shutil.copytree(GOLDEN, run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    meta["scenario"]["expect"] = expect
    if groups:
        meta["scenario"]["load"]["groups"] = groups
    (run_dir / "run.json").write_text(json.dumps(meta))
    return load_run(run_dir)


def test_verdicts_follow_the_numbers(tmp_path):
    run = _with_expect(tmp_path, {"select": {"limit": "FD_SETSIZE"}, "epoll": {"holds": 1500},
                                  "poll": {"holds": 100000, "limit": "none"}})
    verdicts = {(v.server, v.expected): v for v in check(run)}
    assert verdicts[("select", "limit FD_SETSIZE")].met
    assert verdicts[("epoll", "holds >= 1500")].met
    assert verdicts[("poll", "limit none")].met
    unmet = verdicts[("poll", "holds >= 100000")]
    assert not unmet.met and unmet.got == "1500" and "NOT MET" in unmet.line()
    data = summary(run, list(verdicts.values()), 3)
    assert data["models"]["select"]["limit"] == "FD_SETSIZE" and not data["expectations_met"]
    assert data["models"]["epoll"]["capacity_at_slo"] == 1500


def test_the_report_shows_expectations_and_the_headline(tmp_path):
    run = _with_expect(tmp_path, {"select": {"limit": "EMFILE"}})
    assert not check(run)[0].met
    assert cli.main(["report", str(run.path)]) == 0
    html = (run.path / "report.html").read_text()
    assert "Expectations" in html and "NOT MET" in html
    assert "select stopped at 1,019 connections: FD_SETSIZE" in html
    assert headline(run)[2].startswith("epoll met the SLO")


def test_a_limit_is_stated_at_the_servers_count_when_the_clients_saw_more():
    """At EMFILE the clients still have the sockets the server is refusing
    open; the server's own count is what it held (a C100K run: 19,995 held,
    34,226 open on the load side)."""
    from lab.analysis.headline import _stopped_at

    row = {"connected": 34_226, "server_connections": 19_995}
    assert _stopped_at(row) == ("19,995 connections (the server's count; the load had "
                                "34,226 open)")
    assert _stopped_at({"connected": 1_000, "server_connections": 1_019}) == "1,000 connections"
    assert _stopped_at({"connected": 900, "server_connections": None}) == "900 connections"


def test_figures_of_a_step_compare_two_servers(tmp_path):
    """At 200 connections poll's p99 was 84 ms and epoll's 3.7 ms; select
    lost 35 % of its echoes at 1,500 (the top step, read when ``at`` is not given)."""
    run = _with_expect(tmp_path, {
        "poll": [{"at": 200, "slower_than": "epoll", "times": 10},
                 {"at": 800, "slower_than": "epoll", "times": 10}],
        "epoll": {"at": 200, "p99_ms_below": 5, "error_rate_at_most": 0},
        "select": [{"error_rate_at_most": 0.01}, {"at": 800, "error_rate_at_most": 0},
                   {"at": 1000, "p99_ms_below": 50}]})
    verdicts = {(v.server, v.expected): v for v in check(run)}
    slower = verdicts[("poll", "p99 >= 10x epoll's at 200")]
    assert slower.met and slower.got == "p99 84 ms; epoll: p99 3.71 ms"
    assert not verdicts[("poll", "p99 >= 10x epoll's at 800")].met  # 13.3 vs 7.9 ms
    assert verdicts[("epoll", "p99 < 5 ms at 200")].met
    assert verdicts[("epoll", "error rate <= 0 at 200")].met
    top = verdicts[("select", "error rate <= 0.01")]
    assert not top.met and top.got == "error rate 0.3504"
    assert verdicts[("select", "error rate <= 0 at 800")].met
    elsewhere = verdicts[("select", "p99 < 50 ms at 1000")]  # e.g. --set load.steps=...
    assert not elsewhere.met and elsewhere.got == "no row: not a step of this run (200, 800, 1500)"


GROUP_ROWS = """model,repeat,step,group,users,connected,rps,p50_ms,p99_ms,max_ms,echo_count,\
failures,error_rate,failure_kinds,connect_failures,connect_p99_ms,hold_failures
select,0,2,fast,1000,1000,0.0,,,,0,40,1.0,timeout=40,0,0.5,
select,0,2,slow,500,500,0.0,,,,0,0,0.0,,0,0.5,
epoll,0,2,fast,1000,1000,99.0,0.1,0.4,2.0,990,0,0.0,,0,0.3,
epoll,0,2,slow,500,500,1.0,3500,3506,3508,10,0,0.0,,0,0.4,
"""


def test_a_groups_figures_come_from_groups_csv_and_a_starved_group_is_the_slowest(tmp_path):
    """select's fast group got no echo back (40 timed out): slower than any
    p99; its slow group sent nothing, which meets no figure; poll has no
    groups.csv row at all."""
    run_dir = _with_expect(tmp_path, {
        "select": [{"group": "fast", "slower_than": "epoll", "times": 10},
                   {"group": "fast", "p99_ms_below": 1000},
                   {"group": "slow", "slower_than": "epoll"}],
        "epoll": {"group": "fast", "p99_ms_below": 50, "error_rate_at_most": 0},
        "poll": {"group": "fast", "p99_ms_below": 50}},
        groups=[{"name": "fast", "weight": 2}, {"name": "slow"}]).path
    (run_dir / "groups.csv").write_text(GROUP_ROWS)
    verdicts = {(v.server, v.expected): v for v in check(load_run(run_dir))}
    starved = verdicts[("select", "p99 >= 10x epoll's in group fast")]
    assert starved.met and starved.got == "every echo failed; epoll: p99 0.4 ms"
    assert not verdicts[("select", "p99 < 1000 ms in group fast")].met
    idle = verdicts[("select", "p99 >= 1x epoll's in group slow")]
    assert not idle.met and idle.got == "no echo measured; epoll: p99 3.51e+03 ms"
    assert verdicts[("epoll", "p99 < 50 ms in group fast")].met
    assert verdicts[("epoll", "error rate <= 0 in group fast")].met
    missing = verdicts[("poll", "p99 < 50 ms in group fast")]
    assert not missing.met and missing.got == "no row: the server stopped before that step"
