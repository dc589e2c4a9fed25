"""A server's death belongs to the step in progress when it died, and is named
from evidence: the tutorial's select server dies of FD_SETSIZE during the ramp
from 300 to 1500; a built-in server killed mid-ramp is a crash on the ramping step."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from faultkit import custom_scenario, first_rows, wait_for
from paths import ROOT

from lab.results.writer import read_steps_csv

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time

DATA = ROOT / "tests" / "data" / "servers"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_tutorial_select_server_dies_of_fd_setsize_on_the_ramping_step(tmp_path):
    # The clients count a connection as held once it has an echo back, and the
    # first echo comes at a random phase within one pace: at 200 connections/s
    # and a 100 ms pace, at most ~20 accepted connections are not counted yet.
    scenario = custom_scenario(
        tmp_path / "tutorial.yaml", "tutorial-select",
        [sys.executable, str(DATA / "tutorial_select_server.py"), "--port", "{port}"],
        {"connect_rate": 200, "pace": "100ms", "hold": "2s", "steps": [200, 1500]})
    out = tmp_path / "out"
    proc = subprocess.run([sys.executable, "-m", "lab", str(scenario), "--out", str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=200)
    assert proc.returncode == 0, proc.stderr  # a wall hit is a finding
    (run_dir,) = out.iterdir()
    rows = read_steps_csv(run_dir / "steps.csv")
    assert [(r["step"], r["limit"]) for r in rows] == [("0", ""), ("1", "FD_SETSIZE")]
    assert rows[0]["connected"] == "200"
    # descriptors 0-2, the listener, then one per client up to 1023 (the clients
    # count those that had an echo back: the rest waited in the accept queue)
    assert 1000 <= int(rows[1]["peak_connections"]) <= 1024
    model = json.loads((run_dir / "run.json").read_text())["models"]["tutorial-select"]
    assert "filedescriptor out of range in select()" in model["log_tail"]


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_server_killed_during_a_ramp_crashes_on_the_ramping_step(tmp_path):
    scenario = tmp_path / "ramp.yaml"
    scenario.write_text("name: ramp\nbackend: local\nservers: [epoll]\n"
                        "load: {connect_rate: 100, hold: 1s, steps: [50, 1000]}\n")
    out = tmp_path / "out"
    proc = subprocess.Popen([sys.executable, "-m", "lab", str(scenario), "--out", str(out)],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: first_rows(out) >= 1, 90, "step 0's row")
        (run_dir,) = out.iterdir()
        ready = (run_dir / "logs/epoll.server.stdout.log").read_text().splitlines()[0]
        os.kill(int(ready.split("pid=")[1].split()[0]), signal.SIGKILL)  # mid-ramp to 1000
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()  # reaped: no zombie, no ResourceWarning later
    rows = read_steps_csv(run_dir / "steps.csv")
    assert [(r["step"], r["limit"]) for r in rows] == [("0", ""), ("1", "crash")], err
    assert 50 <= int(rows[1]["server_connections"]) < 1000  # what it last reported holding
