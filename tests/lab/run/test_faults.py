"""Faults as they happen, on the local backend: Ctrl-C storms through a real
terminal, a disk that fills mid-run, an --out that cannot be written."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from faultkit import ROOT, Terminal, first_rows, lab_processes, run_and_fill, tmpfs, wait_for

from lab.results.writer import read_steps_csv

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time

SCENARIO = """\
name: faults
backend: local
servers: [epoll, poll]
load:
  connect_rate: 1000
  hold: 2s
  steps: [100, 200, 300, 400]
"""


def _scenario(tmp_path):
    path = tmp_path / "faults.yaml"
    path.write_text(SCENARIO)
    return path


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_ctrl_c_storm_in_a_terminal_leaves_nothing_and_keeps_the_rows(tmp_path):
    before = lab_processes()
    for attempt in range(2):  # the storm used to leak on every try: twice in a row
        out = tmp_path / f"out{attempt}"
        term = Terminal([str(ROOT / "scripts/run-lab"), str(_scenario(tmp_path)), "--out",
                         str(out)], ROOT, tmp_path / f"rc{attempt}")
        try:
            wait_for(lambda o=out: first_rows(o) >= 1, 90, "the first step row",
                     screen=term.screen)
            term.ctrl_c(times=5, gap_s=0.1)
            rc = term.exit_code(timeout=90)
            screen = term.screen()
        finally:
            term.close()
        assert rc == 130, screen
        assert "interrupted during step" in screen and "all steps done" not in screen
        (run_dir,) = out.iterdir()
        run = json.loads((run_dir / "run.json").read_text())
        rows = read_steps_csv(run_dir / "steps.csv")
        assert run["status"] == "interrupted" and len(run["rows"]) == len(rows) >= 1
        assert run["models"]["epoll"]["interrupted"] is True
        assert "This run was interrupted" in (run_dir / "report.html").read_text()
        left = wait_for(lambda: not (lab_processes() - before) or None, 10, "no lab process",
                        step=0.5) if lab_processes() - before else True
        assert left and not (lab_processes() - before)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_disk_that_fills_mid_run_keeps_rows_in_step_and_tears_down(tmp_path):
    before = lab_processes()
    with tmpfs(tmp_path / "small", "4m") as out:
        run_and_fill([sys.executable, "-m", "lab", str(_scenario(tmp_path)), "--out", str(out)],
                     out)
    assert not (lab_processes() - before)


def test_an_unwritable_out_is_bad_input_before_anything_starts(tmp_path):
    before = set(Path(tempfile.gettempdir()).glob("iolab-local-*"))
    with tmpfs(tmp_path / "ro", "1m") as out:
        subprocess.run(["mount", "-o", "remount,ro", str(out)], check=True)
        proc = subprocess.run([sys.executable, "-m", "lab", str(_scenario(tmp_path)),
                               "--out", str(out)], cwd=ROOT, capture_output=True, text=True,
                              timeout=60)
    assert proc.returncode == 2, proc.stderr
    assert f"--out {out}" in proc.stderr and "Read-only file system" in proc.stderr
    assert "iolab: run" not in proc.stdout + proc.stderr  # nothing started
    # ...and nothing left: not even the local backend's temp directory
    assert set(Path(tempfile.gettempdir()).glob("iolab-local-*")) <= before
