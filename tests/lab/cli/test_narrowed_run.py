"""A run narrowed by ``--models`` writes a record that reads back (issue 22, point 5):
real servers and Locust on the local backend, a tiny scenario."""

from __future__ import annotations

import json

import pytest

from lab import cli

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time

TINY = """\
name: tiny
backend: local
servers: [select, poll, epoll]
load:
  connect_rate: 1000
  hold: 1s
  steps: [20, 40]
expect:
  select: {limit: FD_SETSIZE}
  epoll: {holds: 10}
"""


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_models_subset_reads_back_and_lists_what_it_did_not_check(tmp_path, capsys):
    scenario, out = tmp_path / "tiny.yaml", tmp_path / "out"
    scenario.write_text(TINY)
    assert cli.main([str(scenario), "--out", str(out), "--models", "poll,epoll"]) == 0
    stdout = capsys.readouterr().out
    met = [line for line in stdout.splitlines() if "expect epoll: expected holds >= 10" in line]
    assert len(met) == 1 and met[0].endswith(": met"), stdout
    assert "expect select: expected limit FD_SETSIZE: not checked (select was not run)" in stdout
    (run_dir,) = out.iterdir()
    assert (run_dir / "report.html").is_file() and (run_dir / "capacity.md").is_file()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["expect_not_checked"] == [{"server": "select", "limit": "FD_SETSIZE"}]
    assert [s["name"] for s in record["scenario"]["servers"]] == ["poll", "epoll"]
    assert "not checked" in (run_dir / "report.html").read_text()
    for argv in (["validate", str(run_dir / "scenario.yaml")], ["report", str(run_dir)],
                 ["capacity", str(run_dir)]):
        assert cli.main(argv) == 0, argv
