"""run-lab compare: ratios, the metadata refusal and --force."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
from paths import TESTS

from lab import cli
from lab.analysis.compare import compare_rows, metadata_diffs
from lab.results.reader import load_run

GOLDEN = TESTS / "data" / "runs" / "synthetic-select-poll-epoll"


@pytest.fixture
def pair(tmp_path) -> tuple[Path, Path]:
    a, b = tmp_path / "a", tmp_path / "b"
    shutil.copytree(GOLDEN, a)
    shutil.copytree(GOLDEN, b)
    return a, b


def edit_meta(run_dir: Path, edit) -> None:
    path = run_dir / "run.json"
    meta = json.loads(path.read_text())
    edit(meta)
    path.write_text(json.dumps(meta))


def test_same_run_compares_with_unit_ratios(pair, capsys):
    a, b = pair
    assert cli.main(["compare", str(a), str(b)]) == 0
    rows = compare_rows(load_run(a), load_run(b))
    assert len(rows) == len((a / "steps.csv").read_text().splitlines()) - 1
    assert all(r["connected_ratio"] == 1.0 for r in rows)
    assert "WARNING" not in capsys.readouterr().out


def test_ratios_are_b_over_a(pair):
    a, b = pair
    with (b / "steps.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    for r in rows:
        r["rps"] = str(float(r["rps"]) * 2)
        r["p99_ms"] = str(float(r["p99_ms"]) / 4)
    with (b / "steps.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, rows[0].keys())
        w.writeheader()
        w.writerows(rows)
    for r in compare_rows(load_run(a), load_run(b)):
        assert r["rps_ratio"] == pytest.approx(2.0)
        assert r["p99_ms_ratio"] == pytest.approx(0.25)
        assert r["server_rss_bytes_ratio"] == 1.0


def test_missing_step_in_b_has_no_ratio(pair):
    a, b = pair
    lines = (b / "steps.csv").read_text().splitlines()
    (b / "steps.csv").write_text("\n".join(lines[:-1]) + "\n")
    last = compare_rows(load_run(a), load_run(b))[-1]
    assert last["connected_b"] is None and last["connected_ratio"] is None


def _set_epoll_nofile(meta):
    next(s for s in meta["scenario"]["servers"] if s["name"] == "epoll")["limits"]["nofile"] = 4096


@pytest.mark.parametrize("edit, field, va, vb", [
    (lambda m: m.update(backend="docker"), "backend", "'local'", "'docker'"),
    (lambda m: m.update(format_version=2), "run.json format_version", "1", "2"),
    (lambda m: m["hosts"]["local"].update(cpus=8), "host cpus", "2", "8"),
    (lambda m: m["hosts"]["local"].update(nofile_hard=1024), "host nofile_hard", "20000", "1024"),
    (lambda m: m["scenario"]["load"].update(message_size=512), "load.message_size", "64", "512"),
    (lambda m: m["scenario"]["load"].update(pace="500ms"), "load.pace", "1.0", "0.5"),
    (_set_epoll_nofile, "servers[epoll].limits.nofile", "2048", "4096"),
])
def test_refuses_when_metadata_differs(pair, capsys, edit, field, va, vb):
    a, b = pair
    edit_meta(b, edit)
    assert cli.main(["compare", str(a), str(b)]) == 2
    err = capsys.readouterr().err
    line = next(ln for ln in err.splitlines() if field in ln)
    assert va in line and vb in line
    assert "--force" in err
    assert cli.main(["compare", str(a), str(b), "--force"]) == 0
    out = capsys.readouterr().out
    assert "WARNING" in out and field in out


def test_message_size_counts_but_description_does_not(pair):
    a, b = pair
    edit_meta(b, lambda m: m["scenario"].update(description="other words"))
    assert metadata_diffs(load_run(a), load_run(b)) == []


def test_not_a_run_exits_2(tmp_path, capsys):
    assert cli.main(["compare", str(GOLDEN), str(tmp_path / "nope")]) == 2
    assert str(tmp_path / "nope") in capsys.readouterr().err


def test_compare_across_format_7_warns_that_error_rate_changed_meaning(pair, capsys):
    """Format 7 made error_rate the hold's: a format-6 run's counts connects in
    the ramp too, so the two columns are not the same figure."""
    a, b = pair
    edit_meta(a, lambda m: m.update(format_version=6))
    edit_meta(b, lambda m: m.update(format_version=7))
    assert cli.main(["compare", str(a), str(b)]) == 2  # the format differs: refused ...
    assert "error_rate changed meaning at format 7" in capsys.readouterr().err
    assert cli.main(["compare", str(a), str(b), "--force"]) == 0  # ... or compared, warned
    out = capsys.readouterr().out
    assert "WARNING: error_rate changed meaning at format 7" in out
    assert "the format-6 run's counts every failure of the step" in out
    edit_meta(a, lambda m: m.update(format_version=7))
    edit_meta(b, lambda m: m.update(format_version=8))
    assert cli.main(["compare", str(a), str(b), "--force"]) == 0
    assert "error_rate changed meaning" not in capsys.readouterr().out
