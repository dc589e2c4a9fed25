"""``load.repeat``: every model N times, interleaved; the report draws the
median with its min–max band; ``compare`` of a run with itself is within noise."""

from __future__ import annotations

from itertools import groupby

import pytest

from lab import cli
from lab.analysis.compare import compare
from lab.results.reader import load_run
from lab.results.writer import read_steps_csv

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_repeat_2_on_two_models_interleaves_and_draws_bands(tmp_path, capsys):
    """Two passes are enough for a band (min, max) and the interleaving; each
    pass pays a server and a Locust start (a third one cost ~7 s)."""
    scenario = tmp_path / "rep.yaml"
    scenario.write_text("name: rep\nbackend: local\nservers: [epoll, poll]\n"
                        "load: {connect_rate: 500, hold: 1s, steps: [40, 80], repeat: 3}\n")
    out = tmp_path / "out"
    # --repeat overrides the file's 3
    assert cli.main([str(scenario), "--out", str(out), "--repeat", "2"]) == 0
    capsys.readouterr()
    (run_dir,) = out.iterdir()
    raw = read_steps_csv(run_dir / "steps.csv")
    passes = [key for key, _ in groupby((r["model"], r["repeat"]) for r in raw)]
    assert passes == [("epoll", "0"), ("poll", "0"), ("epoll", "1"), ("poll", "1")]
    run = load_run(run_dir)
    folded = run.rows_for("epoll")
    assert [r["step"] for r in folded] == [0, 1] and all(r["repeats"] == 2 for r in folded)
    for r in folded:  # the median lies inside its band, and the band is the passes' spread
        values = [int(x["connected"]) for x in raw if x["model"] == "epoll"
                  and x["step"] == str(r["step"])]
        assert r["connected_min"] == min(values) and r["connected_max"] == max(values)
        assert r["p99_ms_min"] <= r["p99_ms"] <= r["p99_ms_max"]
    report = (run_dir / "report.html").read_text()
    assert report.count('class="band"') >= 4  # p99, p50 and rate for two models, at least
    assert "over 2 repeats" in report
    text = compare(run_dir, run_dir)
    lines = [ln for ln in text.splitlines() if ln.strip().startswith(("epoll", "poll"))]
    assert len(lines) == 4 and all(ln.count("within noise") == 2 for ln in lines), text
