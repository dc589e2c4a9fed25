"""report.html shows the holdout check (lab/report/holdout.py) next to the plan."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
from paths import TESTS

from lab import cli
from lab.report.html import write_report

RUNS = TESTS / "data" / "runs"


def _report(tmp_path: Path, name: str) -> tuple[Path, str]:
    run_dir = tmp_path / name
    shutil.copytree(RUNS / name, run_dir)
    return run_dir, write_report(run_dir).read_text(encoding="utf-8")


def test_report_has_the_holdout_table_after_the_plan(tmp_path, capsys):
    run_dir, html = _report(tmp_path, "synthetic-select-poll-epoll")
    plan, table = html.index("<h2>Capacity at the SLO"), html.index('<h3 id="holdout">')
    assert plan < table < html.index("<h2>Every step")
    section = html[table:html.index("<h2>Every step")]
    assert "<th>predicted</th><th>measured</th><th>error</th>" in section
    # the same errors the command computes, one row per held-out step and figure
    cli.main(["capacity", str(run_dir), "--holdout"])
    capsys.readouterr()
    epoll = next(h for h in json.loads((run_dir / "capacity.json").read_text())["holdout"]
                 if h["model"] == "epoll")
    want = [c["error"] for f in epoll["figures"] for c in f["checks"] if c["error"] is not None]
    rows = [r for r in section.split("<tr>") if r.startswith("<td>epoll</td>")]
    got = [float(m) / 100 for r in rows for m in re.findall(r'class="text">([+-][\d.]+)%<', r)]
    assert len(rows) == 6 and got == pytest.approx(want, abs=5e-4)
    assert "<li>epoll: extrapolates within ±10%" in section


def test_report_says_when_a_model_has_too_few_steps(tmp_path):
    _, html = _report(tmp_path, "20261128-060017-select-poll-epoll")
    section = html[html.index('<h3 id="holdout">'):html.index("<h2>Every step")]
    assert "<table>" not in section
    assert section.count("too few usable steps") == 3


def test_report_names_each_fit_and_the_ceiling(tmp_path):
    run_dir = tmp_path / "lab"
    shutil.copytree(RUNS.parent / "holdout" / "20261203-190203-lab", run_dir)
    html = write_report(run_dir).read_text(encoding="utf-8")
    section = html[html.index('<h3 id="holdout">'):html.index("<h2>Every step")]
    assert "<th>fit (chosen; leave-one-out error)</th>" in section
    poll_cpu = [r for r in section.split("<tr>") if r.startswith("<td>poll</td><td>CPU")]
    assert len(poll_cpu) == 4 and all("flat (600 µs; 3 steps, LOO error 40.4%)" in r
                                      for r in poll_cpu)
    assert sum("at the ceiling" in r for r in poll_cpu) == 3
    assert "<th>noise</th>" in section and "±40.4%" in poll_cpu[0]  # the flat fit's scatter
    assert "<li>epoll: does NOT extrapolate" in section and "not predictable" in section
