"""A server that does not echo (the tutorial's select server answers
``data.upper()``) is stopped after its first step with the verdict
``mismatch`` and one example, in run.json, the console and the row."""

from __future__ import annotations

import json
import sys

import pytest
from faultkit import custom_scenario
from paths import TESTS

from lab import cli
from lab.results.writer import read_steps_csv

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time

DATA = TESTS / "data" / "servers"


@pytest.mark.slow
@pytest.mark.timeout(180)
def test_a_server_that_upper_cases_stops_with_mismatch_and_an_example(tmp_path, capsys):
    scenario = custom_scenario(
        tmp_path / "upper.yaml", "upper",
        [sys.executable, str(DATA / "tutorial_select_server.py"), "--port", "{port}",
         "--reply", "upper"], {"connect_rate": 1000, "hold": "1s", "steps": [20, 40, 60]})
    out = tmp_path / "out"
    assert cli.main([str(scenario), "--out", str(out)]) == 0  # a verdict is a finding
    console = capsys.readouterr()
    (run_dir,) = out.iterdir()
    rows = read_steps_csv(run_dir / "steps.csv")
    assert [(r["step"], r["limit"]) for r in rows] == [("0", "mismatch")]  # stopped after it
    model = json.loads((run_dir / "run.json").read_text())["models"]["upper"]
    example = model["mismatch_example"]
    # the first 8 bytes carry the message's sequence number (not letters, so
    # upper() leaves them alone); the text after it comes back upper-cased
    assert example["offset"] == 8
    assert example["sent"] != example["received"]
    assert example["sent"][2:].upper() == example["received"][2:]
    assert model["limit"] == "mismatch" and model["stopped_at_step"] == 0
    text = console.out + console.err
    assert "replies differ from what was sent" in text and example["received"] in text
    report = (run_dir / "report.html").read_text()
    assert "its replies were not the bytes sent" in report
