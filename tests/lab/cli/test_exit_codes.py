"""Exit codes (runs contract): 0 every model measured, 1 some model could not be
measured, 2 bad input, 130 SIGINT, 143 SIGTERM — also with --ui."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from faultkit import Terminal, custom_scenario, wait_for
from paths import ROOT

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time

UI = """\
name: ui-exit
backend: local
servers: [epoll]
load: {steps: [10]}
"""


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_model_that_could_not_be_measured_gives_1(tmp_path):
    scenario = custom_scenario(tmp_path / "half.yaml", "dies",
                               ["{python}", "-c", "import sys; sys.exit(3)"],
                               {"connect_rate": 1000, "hold": "1s", "steps": [20]},
                               extra_servers=("epoll",))
    proc = subprocess.run([sys.executable, "-m", "lab", str(scenario), "--out",
                           str(tmp_path / "out")], cwd=ROOT, capture_output=True, text=True,
                          timeout=150)
    assert proc.returncode == 1, proc.stderr
    assert "epoll: ran every step" in proc.stdout
    assert "not measured: dies" in proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ui_stopped_by_ctrl_c_gives_130(tmp_path):
    scenario = tmp_path / "ui.yaml"
    scenario.write_text(UI)
    term = Terminal([str(ROOT / "scripts/run-lab"), str(scenario), "--ui", "--out",
                     str(tmp_path / "out")], ROOT, tmp_path / "rc")
    try:
        wait_for(lambda: "Locust web UI at" in term.screen(), 90, "the web UI to start")
        term.ctrl_c()
        rc = term.exit_code(timeout=60)
    finally:
        term.close()
    assert rc == 130


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_ui_stopped_by_sigterm_gives_143(tmp_path):
    scenario = tmp_path / "ui.yaml"
    scenario.write_text(UI)
    proc = subprocess.Popen([sys.executable, "-m", "lab", str(scenario), "--ui", "--out",
                             str(tmp_path / "out")], cwd=ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    seen = []
    try:
        for line in proc.stdout:
            seen.append(line)
            if "Locust web UI at" in line:
                break
        proc.send_signal(signal.SIGTERM)
        rest, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()  # reaped: no zombie, no ResourceWarning later
    assert proc.returncode == 143, "".join(seen) + rest
