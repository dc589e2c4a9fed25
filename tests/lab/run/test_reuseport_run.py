"""A whole local run with ``processes: 2``: two SO_REUSEPORT processes hold
a step that one process's open-file limit cannot."""

from __future__ import annotations

import json

import pytest
from faultkit import run_local

from lab.results.writer import read_steps_csv

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_two_processes_hold_past_one_processes_nofile(tmp_path):
    # nofile 80: one epoll process holds 80 - 6 = 74; two hold 148 (100 hashed
    # over two leaves each far below 74).
    run_dir = run_local(tmp_path, "name: reuseport\nbackend: local\nservers:\n"
                        "  - {name: two, model: epoll, processes: 2, limits: {nofile: 80}}\n"
                        "  - {name: one, model: epoll, limits: {nofile: 80}}\n"
                        "load: {connect_rate: 1000, hold: 2s, steps: [40, 100]}\n")
    rows = {(r["model"], int(r["step"])): r for r in read_steps_csv(run_dir / "steps.csv")}
    two = rows["two", 1]
    assert two["limit"] == "" and int(two["connected"]) == int(two["server_connections"]) == 100
    assert rows["one", 0]["limit"] == "" and rows["one", 1]["limit"] == "EMFILE"
    assert int(rows["one", 1]["server_connections"]) == 74
    final = json.loads((run_dir / "run.json").read_text())["models"]["two"]["final"]
    assert len(final["processes"]) == 2 and final["peak_connections"] == 100
