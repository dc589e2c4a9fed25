"""Two phases per step, end to end on the local backend: a textbook server's
full accept queue is a connect-phase finding when every connection was made,
and a churn load measures epoll's accept rate."""

from __future__ import annotations

from pathlib import Path

import pytest
from paths import TESTS

from lab import cli
from lab.backends.local import free_port
from lab.results.writer import read_steps_csv

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time

SERVER = TESTS / "data/servers/tutorial_select_server.py"

TEXTBOOK = """\
name: textbook
backend: local
servers:
  - name: textbook
    command: ["{{python}}", "{server}", "--port", "{{port}}", "--backlog", "5"]
    port: {port}
load:
  connect_rate: 1000
  hold: 4s
  steps: [200, 600]
"""

CHURN = """\
name: churn-epoll
backend: local
servers: [epoll]
load:
  user: churn
  connect_rate: 300
  hold: 3s
  steps: [40]
"""


def _run(tmp_path: Path, text: str) -> tuple[list[dict[str, str]], Path]:
    scenario = tmp_path / "s.yaml"
    scenario.write_text(text)
    out = tmp_path / "out"
    assert cli.main([str(scenario), "--out", str(out)]) == 0
    (run_dir,) = out.iterdir()
    return read_steps_csv(run_dir / "steps.csv"), run_dir


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_listen_5_server_that_made_every_connection_has_no_backlog_wall(tmp_path):
    text = TEXTBOOK.format(server=SERVER, port=free_port())
    rows, _ = _run(tmp_path, text)
    top = rows[-1]
    assert [r["step"] for r in rows] == ["0", "1"]  # not dropped after its first step
    assert top["connected"] == "600" and top["limit"] == ""
    assert float(top["connect_p99_ms"]) > 0 and int(top["connect_count"]) >= 400
    # the kernel's evidence is read (0 is a measurement; empty would be unread)
    assert top["syn_drops"] != "" and top["listen_overflows"] != ""
    assert float(top["error_rate"]) < 0.01


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_churn_against_epoll_reports_its_accept_rate(tmp_path):
    rows, run_dir = _run(tmp_path, CHURN)
    (row,) = rows
    assert float(row["connects_per_s"]) > 0 and row["dropped"] != ""
    assert row["limit"] == ""
    plan = (run_dir / "capacity.md").read_text()
    (line,) = [x for x in plan.splitlines() if x.startswith("| epoll |")]
    assert "connects/s @SLO" in plan and "| none |" in line  # met the SLO: not judged by held
    assert (run_dir / "chart-accept.png").exists()
