"""The run command's end (issue 22, point 5): a run whose report could not be
written exits 1 and says how to write it later; one narrowed by ``--models``
lists the expectations it did not check, and they do not fail it."""

from __future__ import annotations

import json

from lab_fakes import T0, FakeBackend, Script, stats, step_record

from lab import cli
from lab.cli import run_cmd

SCENARIO = """\
servers: [select, epoll]
load: {hold: 5s, steps: [200, 1200]}
expect:
  select: {limit: FD_SETSIZE}
  epoll: {holds: 100}
"""


def _holding() -> Script:
    return Script(steps=[step_record(0, 200, 200), step_record(1, 1200, 1200)],
                  events=[stats(T0 + 9.9, 200), stats(T0 + 19.9, 1200), stats(T0 + 20.4, 1200)])


def _fake_backend(monkeypatch):
    monkeypatch.setattr(run_cmd, "choose_backend",
                        lambda scenario, choice, live, **kw: FakeBackend(
                            {s.name: _holding() for s in scenario.servers}))


def test_a_run_whose_report_cannot_be_written_exits_1_and_says_how_to_write_it(
        tmp_path, monkeypatch, capsys):
    _fake_backend(monkeypatch)

    def broken(run_dir):
        raise RuntimeError("the disk said no")

    monkeypatch.setattr("lab.report.html.write_report", broken)
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    code = cli.main([str(path), "--out", str(tmp_path / "out"), "--models", "epoll"])
    err = capsys.readouterr().err
    (run_dir,) = (tmp_path / "out").iterdir()
    assert code == 1, err
    assert f"write it later with `run-lab report {run_dir}` and `run-lab capacity {run_dir}`" \
        in err
    assert "the disk said no" in err  # the cause, from the end of the run


def test_a_narrowed_run_lists_what_it_did_not_check_and_passes(tmp_path, monkeypatch, capsys):
    _fake_backend(monkeypatch)
    path = tmp_path / "s.yaml"
    path.write_text(SCENARIO)
    code = cli.main([str(path), "--out", str(tmp_path / "out"), "--models", "epoll", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    summary = json.loads(captured.out)
    assert summary["expectations_met"] is True
    assert [(v["server"], v["expected"], v["checked"]) for v in summary["expect_not_checked"]] \
        == [("select", "limit FD_SETSIZE", False)]
    assert "select: expected limit FD_SETSIZE: not checked (select was not run)" in captured.err
    (run_dir,) = (tmp_path / "out").iterdir()
    assert "not checked" in (run_dir / "report.html").read_text()
    assert cli.main(["report", str(run_dir)]) == 0 and cli.main(["capacity", str(run_dir)]) == 0
