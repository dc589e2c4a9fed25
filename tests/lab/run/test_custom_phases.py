"""Issue 18's done-when for custom servers, end to end on the local backend: a
forking server that accepts slower than the ramp is measured at every step
with a connect-phase finding (no ``backlog`` wall at its first step), and a
compiled server's rows carry its CPU, so the plan has its CPU per message."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
from paths import TESTS

from lab import cli
from lab.analysis.capacity import plan_run, slo_of
from lab.analysis.connect import finding
from lab.backends.local import free_port
from lab.results.reader import load_run
from lab.results.writer import read_steps_csv
from tests import forking_echo

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time

SLOW_FORKER = """\
name: slow-forker
backend: local
servers:
  - name: forker
    command: ["{{python}}", "{script}", "{{port}}", "8", "8"]
    port: {port}
    limits: {{nofile: max}}
load:
  user: echo
  pace: 1s
  connect_rate: 1000
  hold: 3s
  steps: [150, 300]
"""

COMPILED = """\
name: compiled
backend: local
servers:
  - name: c-epoll
    command: ["{binary}", "{{port}}"]
    port: {port}
load:
  user: echo
  pace: 50ms
  connect_rate: 500
  hold: 3s
  steps: [50, 100]
"""


def _run(tmp_path: Path, text: str) -> Path:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(text)
    out = tmp_path / "out"
    assert cli.main([str(scenario), "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    return run_dir


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_forking_server_slower_than_the_ramp_gets_a_finding_not_a_backlog_wall(tmp_path):
    """Accepting ~100 connections a second (8 ms after each fork) behind a
    queue of 8, against 1,000 connects/s: SYNs are dropped and retried, every
    connection is made late, and both steps are measured."""
    run_dir = _run(tmp_path, SLOW_FORKER.format(port=free_port(), script=forking_echo.PATH))
    rows = read_steps_csv(run_dir / "steps.csv")
    assert [(r["step"], r["connected"], r["limit"]) for r in rows] == [
        ("0", "150", ""), ("1", "300", "")]
    first = rows[0]
    assert int(first["listen_overflows"]) > 0 and int(first["syn_drops"]) > 0
    assert float(first["connect_max_ms"]) >= 900  # a dropped SYN is retransmitted after 1 s
    assert first["accept_queue_max"] == "8"
    run = load_run(run_dir)
    text = finding(run.rows_for("forker")[0], slo_of(run))
    assert text is not None and "the accept queue of 8 overflowed" in text
    assert "the accept queue of 8 overflowed" in (run_dir / "report.html").read_text()


@pytest.mark.slow
@pytest.mark.timeout(120)
def test_a_compiled_custom_servers_cpu_per_message_is_measured(tmp_path):
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler (cc, gcc) on this machine")
    binary = tmp_path / "epoll_echo"
    subprocess.run([cc, "-O2", "-o", str(binary), str(TESTS / "data/servers/epoll_echo.c")],
                   check=True)
    run_dir = _run(tmp_path, COMPILED.format(port=free_port(), binary=binary))
    rows = read_steps_csv(run_dir / "steps.csv")
    assert [r["limit"] for r in rows] == ["", ""]
    assert all(float(r["server_cpu_s"]) > 0 and int(r["echo_count"]) > 0 for r in rows)
    run = load_run(run_dir)
    (plan,) = plan_run(run, slo_of(run))
    assert plan.cpu_per_message_s is not None and 0 < plan.cpu_per_message_s < 0.001
    assert json.loads((run_dir / "run.json").read_text())["models"]["c-epoll"][
        "measured_by"] == "proc"
