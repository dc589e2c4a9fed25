"""The whole lab's memory per step (``MEMORY_COLUMNS``) and the report's
"Memory of the whole lab" section, from runs with known costs."""

from __future__ import annotations

import csv
from pathlib import Path

from lab.report import memory
from lab.report.html import render_html
from lab.results.reader import load_run
from lab.results.writer import COLUMNS, MEMORY_COLUMNS, memory_columns

MiB = 2**20
SERVER, LOAD, KERNEL = 300, 11_000, 3_000  # bytes per connection, known


def test_the_sum_needs_every_part():
    assert memory_columns(10, 20, 30) == {"loadgen_rss_bytes": 20, "lab_mem_bytes": 60}
    for parts in ((None, 20, 30), (10, None, 30), (10, 20, None)):
        assert memory_columns(*parts)["lab_mem_bytes"] is None  # unknown, not a smaller lab
    assert set(MEMORY_COLUMNS) <= set(COLUMNS)


def write_run(path: Path, models: dict[str, list[int]], limits: dict[str, str] | None = None
              ) -> Path:
    path.mkdir(parents=True)
    cols = ("model", "step", "target_connections", "connected", "server_rss_bytes",
            "loadgen_rss_bytes", "kernel_sock_bytes", "lab_mem_bytes", "t_end", "limit")
    limits = limits or {}
    with (path / "steps.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, cols)
        w.writeheader()
        for model, conns in models.items():
            for step, n in enumerate(conns):
                server, load, kernel = 20 * MiB + SERVER * n, 60 * MiB + LOAD * n, KERNEL * n
                at_wall = step == len(conns) - 1 and model in limits
                load += 100 * MiB if at_wall else 0  # users spawned past what was held
                w.writerow({"model": model, "step": step, "target_connections": n,
                            "connected": n, "server_rss_bytes": server,
                            "loadgen_rss_bytes": load, "kernel_sock_bytes": kernel,
                            "lab_mem_bytes": server + load + kernel, "t_end": 100 + step,
                            "limit": limits[model] if at_wall else ""})
    return path


def test_peak_and_per_connection_growth(tmp_path):
    run = load_run(write_run(tmp_path / "r", {"select": [1000, 1019],
                                               "epoll": [1000, 50_000, 100_000]}))
    model, row = memory.peak(run)
    assert (model, row["connected"]) == ("epoll", 100_000)
    html = memory.section(run)
    peak_mib = (80 * MiB + (SERVER + LOAD + KERNEL) * 100_000) / MiB
    assert f"{peak_mib:,.1f} MiB" in html and "100,000 connections" in html
    # growth from the first step: the interpreters' fixed memory drops out
    assert f"{SERVER + LOAD:,} B" in html and f"{KERNEL:,} B" in html
    assert "both ends" in html  # no hosts: one machine
    assert "Memory of the whole lab" in render_html(run)


def test_a_step_at_a_limit_is_left_out_of_the_cost_per_connection(tmp_path):
    """At its wall the clients count sockets being refused and the load's
    memory follows the users spawned: that step would distort the growth."""
    run = load_run(write_run(tmp_path / "r", {"epoll": [1000, 10_000, 34_000]},
                             limits={"epoll": "EMFILE"}))
    html = memory.section(run)
    assert "34,000 connections" in html  # the peak is still that step
    assert f"{SERVER + LOAD:,} B" in html and f"{KERNEL:,} B" in html  # from the first two
    only_wall = load_run(write_run(tmp_path / "w", {"select": [1019]},
                                   limits={"select": "FD_SETSIZE"}))
    assert "<td>–</td><td>–</td>" in memory.section(only_wall)  # no step without a limit


def test_no_section_without_the_columns(tmp_path):
    path = tmp_path / "old"
    path.mkdir()
    (path / "steps.csv").write_text("model,step,connected,server_rss_bytes\nepoll,0,10,100\n")
    run = load_run(path)
    assert memory.section(run) == "" and memory.peak(run) is None
