"""``run-lab clean`` spares a run that is still going, and removes what no live
run owns."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from faultkit import first_rows, wait_for
from paths import ROOT

from lab.owner import TEMP_PREFIX, is_live, owner_id, temp_dir_owner, temp_prefix

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time

LIVE = """\
name: live
backend: local
servers: [epoll]
load: {connect_rate: 1000, hold: 2s, steps: [50, 100, 150]}
"""


def test_owner_ids_tell_live_from_dead():
    assert is_live(owner_id()) is True
    me = owner_id().split(":")
    # the same pid with another start time: a process that reused the pid
    assert is_live(f"{me[0]}:{me[1]}:{int(me[2]) + 1}") is False
    assert is_live("elsewhere.example:1:1") is None and is_live(None) is False
    assert temp_dir_owner(temp_prefix() + "abc") == owner_id()


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_clean_during_a_live_run_spares_it(tmp_path):
    scenario = tmp_path / "live.yaml"
    scenario.write_text(LIVE)
    stale = Path(tempfile.mkdtemp(prefix=f"{TEMP_PREFIX}1-1-"))  # pid 1 started at tick 1: dead
    out = tmp_path / "out"
    run = subprocess.Popen([sys.executable, "-m", "lab", str(scenario), "--out", str(out)],
                           cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_for(lambda: first_rows(out) >= 1, 90, "the live run's first row")
        live_dirs = [p for p in Path(tempfile.gettempdir()).glob(f"{TEMP_PREFIX}{run.pid}-*")]
        clean = subprocess.run([sys.executable, "-m", "lab", "clean", "--out", str(out)],
                               cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert clean.returncode == 0, clean.stderr
        assert live_dirs and all(p.exists() for p in live_dirs), clean.stdout
        assert not stale.exists()
        assert "kept" in clean.stdout and "(live)" in clean.stdout
        stdout, stderr = run.communicate(timeout=120)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()  # reaped: no zombie, no ResourceWarning later
        if stale.exists():
            os.rmdir(stale)
    assert run.returncode == 0, stderr
    (run_dir,) = out.iterdir()
    record = json.loads((run_dir / "run.json").read_text())
    assert record["status"] == "complete" and len(record["rows"]) == 3
