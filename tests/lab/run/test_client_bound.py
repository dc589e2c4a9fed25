"""One worker driving flat-out echo: the generator, not the server, is the
limit, and the row says so instead of drawing its latency as the server's."""

from __future__ import annotations

import pytest
from faultkit import run_local

from contract.generator import CPU_BOUND
from lab.analysis.capacity import plan_run, slo_of
from lab.results.reader import load_run

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_saturated_worker_makes_the_step_client_bound(tmp_path, capsys):
    # 500 users each asking for an echo every millisecond: 500,000 a second,
    # far beyond what one gevent worker can send (it does a few tens of thousands).
    run_dir = run_local(tmp_path, "name: hot\nbackend: local\nservers: [epoll]\n"
                        "load: {workers: 1, pace: 1ms, connect_rate: 1000, hold: 4s, "
                        "steps: [500]}\n")
    capsys.readouterr()
    run = load_run(run_dir)
    (row,) = run.rows_for("epoll")
    assert row["loadgen_cpu_max"] >= CPU_BOUND, row
    assert row["client_bound"] is True and row["limit"] is None
    (plan,) = plan_run(run, slo_of(run))
    assert plan.capacity is None and sum(plan.left_out.values()) == 1  # nothing to plan on
    report = (run_dir / "report.html").read_text()
    assert "of a core (bound 0.9)" in report and 'class="hollow"' in report
