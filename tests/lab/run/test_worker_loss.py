"""A load worker killed mid-run is a finding about the load, not the server:
its steps say ``worker_lost`` and client-bound, the report names the worker,
and the capacity plan is not lowered by the connections it took with it. With
``load.worker_timeout: 2s`` the loss is named within seconds, and the ramp it
left short is held as it is (not after the 30 s ramp slack)."""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
from faultkit import during_run, wait_for

from lab.analysis.capacity import plan_run, slo_of
from lab.results.reader import load_run

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time
HOLD_S = 2  # step 1 (a 1 s ramp and the hold) outlasts the kill, ~0.5 s after row 0
WORKER_TIMEOUT_S = 2  # load.worker_timeout: a killed worker is named this long after


def writers_of(log: Path) -> list[int]:
    """Pids whose stderr is ``log`` (each local worker writes its own log)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if os.readlink(entry / "fd" / "2") == str(log):
                    found.append(int(entry.name))
            except OSError:
                continue
    return found


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_killed_worker_is_worker_lost_and_does_not_lower_capacity(tmp_path):
    scenario = tmp_path / "loss.yaml"
    scenario.write_text("name: loss\nbackend: local\nservers: [epoll]\n"
                        f"load: {{workers: 2, connect_rate: 100, hold: {HOLD_S}s, "
                        f"worker_timeout: {WORKER_TIMEOUT_S}s, steps: [100, 200, 300]}}\n")
    out = tmp_path / "out"
    killed_at = []

    def kill_worker_1(run_dir: Path) -> None:
        log = run_dir / "logs" / "epoll.locust-worker-1.log"
        (pid,) = wait_for(lambda: writers_of(log), 10, "worker 1's process")
        os.kill(pid, signal.SIGKILL)
        killed_at.append(time.time())

    code, text, run_dir = during_run([sys.executable, "-m", "lab", str(scenario), "--out",
                                      str(out)], out, kill_worker_1)
    assert code == 0, text
    run = load_run(run_dir)
    rows = run.rows_for("epoll")
    assert rows[0]["limit"] is None and rows[0]["client_bound"] is False
    lost = [r for r in rows if r["limit"] == "worker_lost"]
    assert lost and all(r["client_bound"] for r in lost), rows
    assert all(r["workers_alive"] < r["workers_expected"] for r in lost)
    # Killed in step 1, most often in its 1 s ramp (100 connections/s), which
    # the lost worker keeps short of 200: two holds, the timeout and a ramp
    # later the run is over. Without the timeout and the ramp's early end it
    # took 11 s and 30 s more.
    assert rows[-1]["t_end"] - killed_at[0] < 2 * HOLD_S + WORKER_TIMEOUT_S + 6, (killed_at, rows)
    meta = json.loads((run_dir / "run.json").read_text())["models"]["epoll"]
    (entry,) = meta["workers_lost"]
    assert entry["worker"] == "epoll.locust-worker-1" and entry["exit_code"] == -9
    assert "load worker lost" in text and "epoll.locust-worker-1" in text
    # the plan: step 0 passed; the lost steps are left out, not a lower capacity
    (plan,) = plan_run(run, slo_of(run))
    assert plan.capacity == rows[0]["connected"] and plan.binds == "none"
    assert sum(plan.left_out.values()) == len(lost)
    assert run.first_limit("epoll") is None  # never the server's limit
    report = (run_dir / "report.html").read_text()
    assert "client-bound step(s)" in report and "epoll.locust-worker-1" in report
    assert 'class="hollow"' in report
