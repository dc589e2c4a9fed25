"""The headline compares CPU only among servers whose CPU was measured."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

from paths import TESTS

from lab.analysis.headline import headline
from lab.results.reader import load_run

GOLDEN = TESTS / "data/runs/20261128-060017-select-poll-epoll"
CPU = ("server_cpu_s", "server_cpu_user_s", "server_cpu_sys_s")


def _without_cpu(tmp_path: Path, models: set[str]):
    """The golden run as if ``models`` were custom servers nobody measured."""
    run_dir = tmp_path / GOLDEN.name
    shutil.copytree(GOLDEN, run_dir)
    with (run_dir / "steps.csv").open() as f:
        rows = list(csv.DictReader(f))
    for row in rows:
        if row["model"] in models:
            row.update(dict.fromkeys(CPU, ""))
    with (run_dir / "steps.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    meta = json.loads((run_dir / "run.json").read_text())
    for row in meta.get("rows", []):
        if row["model"] in models:
            row.update(dict.fromkeys(CPU))
    (run_dir / "run.json").write_text(json.dumps(meta))
    return load_run(run_dir)


def test_the_least_is_said_of_every_server_when_all_were_measured():
    assert headline(load_run(GOLDEN))[2].endswith("52 µs of CPU per message (the least).")


def test_the_least_names_the_server_whose_cpu_was_not_measured(tmp_path):
    select, poll, epoll = headline(_without_cpu(tmp_path, {"poll"}))
    assert "an unmeasured amount of CPU per message" in poll
    assert epoll.endswith("52 µs of CPU per message (the least among those measured; CPU "
                          "not measured for poll).")
    assert "4.8× epoll's" in select  # two measured figures still compare


def test_no_superlative_when_only_one_server_was_measured(tmp_path):
    *_, epoll = headline(_without_cpu(tmp_path, {"select", "poll"}))
    assert "the least" not in epoll
    assert epoll.endswith("(CPU not measured for select and poll: nothing to compare it with).")
