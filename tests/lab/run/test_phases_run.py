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
  hold: 3s
  steps: [600, 1500]
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
    """issue 18's done-when: stepped [600, 1500] at 1000 connects/s, the 600
    step has no limit and holds 600, its connect phase shows the queue (SYNs
    dropped, connects retransmitted after 1 s), and the 1500 step is FD_SETSIZE."""
    text = TEXTBOOK.format(server=SERVER, port=free_port())
    rows, run_dir = _run(tmp_path, text)
    first, top = rows
    assert first["connected"] == "600" and first["limit"] == ""
    assert int(first["connect_count"]) >= 600 and float(first["error_rate"]) < 0.01
    # The accept queue's effect: the kernel dropped handshakes on the listen(5)
    # socket, and a dropped SYN's retransmission makes a connect take >= 1 s.
    assert int(first["syn_drops"]) > 0 and int(first["listen_overflows"]) > 0
    assert float(first["connect_max_ms"]) >= 900
    assert first["accept_queue_max"] == "5" and int(first["accept_queue_peak"]) >= 1
    assert first["load_ports_max"] != ""  # the load's sockets are read (this namespace)
    assert top["limit"] == "FD_SETSIZE"
    report = (run_dir / "report.html").read_text()
    assert "the accept queue of 5 overflowed" in report


@pytest.mark.slow
@pytest.mark.timeout(60)
def test_churn_against_epoll_reports_its_accept_rate(tmp_path):
    rows, run_dir = _run(tmp_path, CHURN)
    (row,) = rows
    assert float(row["connects_per_s"]) > 0 and row["dropped"] != ""
    assert row["limit"] == ""
    # Churn clients close first: their ends wait in TIME_WAIT, holding source ports.
    assert int(row["load_time_wait"]) > 0 and int(row["load_ports_max"]) > 0
    plan = (run_dir / "capacity.md").read_text()
    (line,) = [x for x in plan.splitlines() if x.startswith("| epoll |")]
    assert "connects/s @SLO" in plan and "| none |" in line  # met the SLO: not judged by held
    assert (run_dir / "chart-accept.png").exists()
