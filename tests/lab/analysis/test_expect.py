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


def _with_expect(tmp_path, expect):
    run_dir = tmp_path / GOLDEN.name
    shutil.copytree(GOLDEN, run_dir)
    meta = json.loads((run_dir / "run.json").read_text())
    meta["scenario"]["expect"] = expect
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
