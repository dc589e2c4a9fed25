"""Capacity arithmetic on small hand-made row sets, and the CLI on a golden run."""

from __future__ import annotations

import csv
import json
import math
import shutil

import pytest
from paths import TESTS

from contract.limits import FD_SETSIZE_LIMIT, explain
from contract.models import BY_NAME
from lab import cli
from lab.analysis.capacity import SLO, passes, plan_model
from lab.analysis.fits import FLAT, LINEAR, POWER, Fit, choose, flat, line
from lab.analysis.plan_costs import band_rows, cpu_connections, saturated
from lab.analysis.plan_table import table_rows
from lab.results.repeats import fold

GOLDEN = TESTS / "data" / "runs" / "synthetic-select-poll-epoll"
HOST = {"cpus": 4, "mem_bytes": 8 * 2**30, "nofile_hard": 20000, "port_range": [32768, 60999]}
MiB = 2**20


def row(step, target, held, p99=5.0, err=0.0, rss=0, cpu=0.0, t_end=None, echo=1000,
        kernel=None, limit=None):
    return {"model": "m", "step": step, "target_connections": target, "connected": held,
            "p99_ms": p99, "error_rate": err, "server_rss_bytes": rss, "server_cpu_s": cpu,
            "t_end": t_end, "hold_s": 10.0, "echo_count": echo, "kernel_sock_bytes": kernel,
            "limit": limit}


# Three steps: 1000 and 2000 pass, 3000 misses the 50 ms p99.
SWEEP = [
    row(1, 1000, 1000, p99=10, rss=30 * MiB, cpu=2.0, t_end=100.0, echo=10_000, kernel=8 * MiB),
    row(2, 2000, 2000, p99=20, rss=40 * MiB, cpu=6.0, t_end=110.0, echo=20_000, kernel=16 * MiB),
    row(3, 3000, 3000, p99=80, rss=60 * MiB, cpu=14.0, t_end=120.0, echo=30_000, kernel=24 * MiB),
]


def test_latency_bound_plan_by_hand():
    p = plan_model("m", SWEEP, SLO(p99_ms=50, error_rate=0.01), HOST, "max", "epoll",
                   target=100_000)
    assert (p.capacity, p.capacity_step, p.binds, p.swept_to) == (2000, 2, "latency", 3000)
    assert "80 ms > 50 ms" in p.why
    # memory: slope from the first step to the most connections, (60-30) MiB over 2000
    assert p.rss_per_1000 == pytest.approx(15 * MiB)
    assert p.kernel_per_1000 == pytest.approx(8 * MiB)
    # CPU at step 2: 4 s over 10 s = 0.4 cores for 2000 connections -> 0.2 per 1000
    assert p.cores_per_1000 == pytest.approx(0.2)
    assert p.cpu_per_message_s == pytest.approx(4.0 / 20_000)
    caps = p.host_capacity
    # nofile less the descriptors epoll holds itself (contract/fds.py), as doctor says
    assert caps["descriptors"] == 20000 - BY_NAME["epoll"].fd_overhead == 19994
    assert caps["source ports"] == 60999 - 32768 + 1
    assert caps["CPU"] == int(1 / 0.0002)  # single-threaded: one core
    assert caps["memory"] == int(8 * 2**30 / (23 * MiB / 1000))
    assert caps["measured: CPU (latency SLO)"] == 2000
    assert p.host_binding == "measured: CPU (latency SLO)"
    assert p.hosts == math.ceil(100_000 / 2000)


def test_rate_scales_cpu_and_multicore_models_use_all_cpus():
    p = plan_model("m", SWEEP[:2], SLO(p99_ms=50), HOST, "max", "threads",
                   target=10_000, rate=50_000.0)
    assert p.binds == "none" and p.capacity == 2000
    # 2e-4 s per message * 5 messages/s per connection = 1e-3 cores per connection, 4 cores
    assert p.host_capacity["CPU"] == int(4 / (2e-4 * 50_000 / 10_000))
    assert not any(k.startswith("measured") for k in p.host_capacity)
    assert p.host_binding == "CPU"
    assert p.hosts == math.ceil(10_000 / p.host_capacity["CPU"])


def test_fd_setsize_wall_binds_descriptors():
    rows = [row(1, 500, 500, rss=20 * MiB, cpu=1.0, t_end=10.0),
            row(2, 1500, 1019, rss=21 * MiB, cpu=2.0, t_end=20.0, limit="FD_SETSIZE")]
    p = plan_model("m", rows, SLO(), HOST, "max", "select", target=5000)
    assert (p.capacity, p.binds, p.wall) == (500, "FD_SETSIZE", 1019)
    # The clients also count sockets in the accept queue and refusals on their
    # way (a local run: 1,097 open on the clients, 1,019 held by select): the
    # wall is the server's own count.
    rows[1] = {**rows[1], "connected": 1097, "server_connections": 1019}
    p = plan_model("m", rows, SLO(), HOST, "max", "select", target=5000)
    assert p.wall == 1019
    assert p.why == explain(FD_SETSIZE_LIMIT)
    assert p.host_capacity["descriptors"] == 1024 - BY_NAME["select"].fd_overhead == 1019
    assert p.host_binding == "measured: descriptors"
    assert p.hosts == math.ceil(5000 / 1019)


def test_single_step_memory_is_the_average():
    p = plan_model("m", SWEEP[:1], SLO(), HOST, "max", "epoll")
    assert p.rss_per_1000 == pytest.approx(30 * MiB)


def test_nofile_number_caps_descriptors():
    p = plan_model("m", SWEEP[:1], SLO(), HOST, 2048, "epoll")
    assert p.host_capacity["descriptors"] == 2048 - BY_NAME["epoll"].fd_overhead
    assert p.hosts is None  # no target, no host count


@pytest.mark.parametrize("bad, word", [
    ({"connected": 980}, "held 980 of 1000"),
    ({"error_rate": 0.05}, "error rate"),
    ({"p99_ms": 60.0}, "p99 60 ms"),
    ({"limit": "EMFILE"}, "limit EMFILE"),
])
def test_each_slo_criterion_can_fail(bad, word):
    r = {**row(1, 1000, 1000), **bad}
    why = passes(r, SLO(p99_ms=50, error_rate=0.01))
    assert len(why) == 1 and word in why[0]


def test_no_echoes_means_no_latency_test():
    assert passes(row(1, 1000, 995, p99=None), SLO(p99_ms=1)) == []


def test_nothing_passes():
    p = plan_model("m", [row(1, 1000, 500, rss=1, cpu=1.0)], SLO(), HOST, "max", "poll", 10)
    assert p.capacity is None and p.binds == "connections" and p.rss_per_1000 is None


def test_capacity_cli_writes_md_and_json(tmp_path, capsys):
    run_dir = tmp_path / GOLDEN.name
    shutil.copytree(GOLDEN, run_dir)
    assert cli.main(["capacity", str(run_dir), "--target-connections", "50000"]) == 0
    out = capsys.readouterr().out
    data = json.loads((run_dir / "capacity.json").read_text())
    md = (run_dir / "capacity.md").read_text()
    models = [m["model"] for m in data["models"]]
    assert models == ["select", "poll", "epoll"]
    for m in data["models"]:
        assert f"| {m['model']} |" in md and f"| {m['model']} |" in out
        assert m["hosts"] == math.ceil(50000 / m["host_capacity"][m["host_binding"]])
    binds = {m["model"]: m["binds"] for m in data["models"]}
    assert binds == {"select": "FD_SETSIZE", "poll": "latency", "epoll": "EMFILE"}


def test_slo_override_moves_the_latency_wall(tmp_path, capsys):
    run_dir = tmp_path / GOLDEN.name
    shutil.copytree(GOLDEN, run_dir)
    cli.main(["capacity", str(run_dir)])
    before = {m["model"]: m for m in json.loads((run_dir / "capacity.json").read_text())["models"]}
    cli.main(["capacity", str(run_dir), "--slo-p99", "1000"])
    after = {m["model"]: m for m in json.loads((run_dir / "capacity.json").read_text())["models"]}
    assert after["poll"]["capacity"] > before["poll"]["capacity"]
    assert after["select"]["binds"] == before["select"]["binds"] == "FD_SETSIZE"


@pytest.mark.parametrize("argv", [["--target-connections", "0"], ["--rate", "-1"]])
def test_bad_numbers_exit_2(tmp_path, capsys, argv):
    run_dir = tmp_path / GOLDEN.name
    shutil.copytree(GOLDEN, run_dir)
    assert cli.main(["capacity", str(run_dir), *argv]) == 2
    assert not (run_dir / "capacity.md").exists()
    assert argv[0] in capsys.readouterr().err


def test_not_a_run_dir_exits_2(tmp_path, capsys):
    assert cli.main(["capacity", str(tmp_path)]) == 2
    assert "steps.csv" in capsys.readouterr().err


@pytest.mark.parametrize("name", sorted(p.name for p in GOLDEN.parent.iterdir()
                                        if (p / "steps.csv").is_file()))
def test_every_golden_run_plans_its_limits(tmp_path, capsys, name):
    run_dir = tmp_path / name
    shutil.copytree(GOLDEN.parent / name, run_dir)
    assert cli.main(["capacity", str(run_dir), "--target-connections", "10000"]) == 0
    plans = {m["model"]: m for m in json.loads((run_dir / "capacity.json").read_text())["models"]}
    with (run_dir / "steps.csv").open(newline="") as f:
        limit_rows = {}
        for r in csv.DictReader(f):
            if r["limit"]:
                limit_rows.setdefault(r["model"], r)
    for model, r in limit_rows.items():
        assert plans[model]["binds"] == r["limit"]
        assert plans[model]["wall"] == int(r["server_connections"] or r["connected"])
    assert all(p["hosts"] >= 1 for p in plans.values())


def test_capacity_md_states_its_rules(tmp_path):
    run_dir = tmp_path / GOLDEN.name
    shutil.copytree(GOLDEN, run_dir)
    cli.main(["capacity", str(run_dir)])
    rules = (run_dir / "capacity.md").read_text().split("## How this is computed")[1]
    assert "99 %" in rules and "hosts = ceil(target / that)" in rules


# --- cost fits (lab/analysis/fits.py) and the CPU ceiling ---------------------------------

NS = (1000, 1500, 2000, 4000, 8000)
WOBBLE = (1.03, 0.97, 1.02, 0.98, 1.01)  # ±3 %, the spread of a quiet step


def test_a_cost_growing_with_connections_gets_a_plus_b_n():
    # poll's shape: every call walks all N descriptors, so each message costs a + b·N
    fit = choose([(n, (100e-6 + 0.05e-6 * n) * w) for n, w in zip(NS, WOBBLE, strict=True)])
    assert fit.kind == LINEAR and fit.b > 0
    assert fit.at(16000) == pytest.approx(100e-6 + 0.05e-6 * 16000, rel=0.1)
    assert fit.error is not None and fit.error < flat([(n, 100e-6 + 0.05e-6 * n)
                                                       for n in NS]).error
    assert "a + b·N" in fit.describe(1e6, " µs") and "LOO error" in fit.describe()


def test_a_constant_cost_stays_flat():
    # epoll's shape: the ready list only; the slope fitted to ±3 % noise must not win
    fit = choose([(n, 25e-6 * w) for n, w in zip(NS, WOBBLE, strict=True)])
    assert fit.kind == FLAT and fit.b == 0 and fit.a == pytest.approx(25e-6 * 1.01)
    assert fit.at(100_000) == fit.a


def test_one_disturbed_step_does_not_move_a_flat_cost():
    fit = choose([(1000, 68e-6), (1500, 26e-6), (4000, 25e-6)])
    assert fit.kind == FLAT and fit.a == 26e-6  # the median, not the mean's 40 µs


@pytest.mark.parametrize("points", [
    [(1000, 100e-6), (4000, 400e-6)],  # two points: nothing left to test a slope on
    # falls faster than 1/N: the CPU of N connections would fall as N grows
    [(1000, 400e-6), (2000, 100e-6), (4000, 25e-6)],
])
def test_a_slope_needs_three_points_and_must_not_make_cpu_fall(points):
    assert choose(points).kind == FLAT


def test_a_cost_that_falls_with_the_rate_is_a_power_law_never_a_falling_line():
    # each message pays less of a wake-up as the rate grows (fits.py): 1/sqrt(N)
    points = [(n, 2e-3 * n ** -0.5) for n in (500, 1000, 1500, 4000)]
    fit = choose(points)
    assert fit.kind == POWER and fit.b == pytest.approx(-0.5) and fit.error < 1e-9
    assert fit.at(16_000) == pytest.approx(2e-3 / 16_000 ** 0.5)
    # the CPU of N connections still grows: the plan's CPU cap solves N·r·a·N^b = cores
    n = cpu_connections(fit, 0.25, 1.0)
    assert n * 0.25 * fit.at(n) == pytest.approx(1.0, rel=1e-3)
    # a line through the same points would fall to free messages: never chosen
    assert choose([(1000, 300e-6), (2000, 200e-6), (4000, 100e-6)]).kind != LINEAR


def test_memory_line_is_not_anchored_on_the_first_steps_page_slack():
    # 250 B per connection, but the first step's RSS holds 40 KiB of touched,
    # not-yet-filled pages: a slope from it is ~5 % low over this span
    true_b, base = 250, 20 * MiB
    points = [(n, base + true_b * n + (40 * 1024 if n == 500 else 0))
              for n in (500, 1000, 1500, 2000, 4000)]
    anchored = (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])
    assert anchored < 0.96 * true_b
    assert abs(line(points).b - true_b) < 0.7 * abs(anchored - true_b)


def _hold_rows(cores_per_step, echo=10_000):
    """Steps of 10 s holding 1000·(i+1) connections that used these cores."""
    rows, cpu = [], 0.0
    for i, cores in enumerate(cores_per_step):
        cpu += cores * 10.0
        rows.append(row(i, 1000 * (i + 1), 1000 * (i + 1), cpu=cpu, t_end=100.0 + 10 * i,
                        echo=echo * (i + 1), rss=20 * MiB, kernel=MiB))
    return rows


def test_a_saturated_core_is_a_ceiling_not_a_cost():
    # 0.1, 0.2, 0.3 cores, then the loop is busy: 0.95 and 0.97 of the one core poll can use
    rows = _hold_rows([0.05, 0.2, 0.3, 0.95, 0.97])
    assert saturated(rows, 1) == [False, False, False, True, True]
    assert saturated(rows, 2) == [False] * 5  # threads on 2 cores: half of them, not full
    p = plan_model("m", rows, SLO(), HOST, "max", "poll")
    assert p.saturated_at == 4000
    assert p.ceiling_messages_per_s == pytest.approx(5 * 10_000 / 10.0)
    # fitted only on steps 1 and 2 (0 holds the start-up, 3 and 4 the ceiling)
    assert p.cpu_fit.points == 2 and p.cpu_fit.a == pytest.approx(
        (0.2 * 10 / 20_000 + 0.3 * 10 / 30_000) / 2)
    assert p.host_capacity["CPU"] == 4000
    # at --rate: the messages/s the core served, over the rate per connection
    q = plan_model("m", rows, SLO(), HOST, "max", "poll", target=10_000, rate=20_000.0)
    assert q.host_capacity["CPU"] == int(5000 / 2.0)


def test_an_unsaturated_cpu_cap_solves_the_fitted_cost():
    rows = _hold_rows([0.05, 0.2, 0.3, 0.4])
    p = plan_model("m", rows, SLO(), HOST, "max", "poll")
    assert p.saturated_at is None and p.messages_per_conn_s == pytest.approx(1.0)
    # N · 1 msg/s · a = 1 core
    assert p.host_capacity["CPU"] == int(1 / p.cpu_fit.a)
    assert cpu_connections(Fit(LINEAR, 1e-4, 1e-8), 1.0, 1.0) == pytest.approx(
        (-1e-4 + math.sqrt(1e-8 + 4e-8)) / 2e-8, abs=1)


def _passes(rss_per_conn, cpu_scale):
    rows = _hold_rows([0.05, 0.1, 0.15, 0.2])
    return [{**r, "server_rss_bytes": 20 * MiB + rss_per_conn * r["connected"],
             "server_cpu_s": r["server_cpu_s"] * cpu_scale, "kernel_sock_bytes": MiB,
             "repeat": i, "client_bound": None} for i, r in enumerate([r.copy() for r in rows])]


def test_repeats_give_the_per_host_capacity_a_band():
    passes_ = []
    for rep, (rss, scale) in enumerate(((50_000, 1.0), (60_000, 1.2), (70_000, 1.4))):
        passes_ += [{**r, "repeat": rep} for r in _passes(rss, scale)]
    folded = fold(passes_)
    assert folded[1]["server_rss_bytes_max"] == 20 * MiB + 70_000 * 2000
    p = plan_model("m", folded, SLO(), {"cpus": 1}, None, "poll")
    low, high = p.host_band
    per_host = p.host_capacity[p.host_binding]
    assert low < per_host < high
    # each end is the plan with every cost at its passes' max (low) and min (high)
    assert low == plan_model("m", band_rows(folded, "max"), SLO(), {"cpus": 1}, None,
                             "poll").host_capacity[p.host_binding]
    assert high == plan_model("m", band_rows(folded, "min"), SLO(), {"cpus": 1}, None,
                              "poll").host_capacity[p.host_binding]
    assert f"({low}–{high})" in table_rows([p])[1][0][7]
    # one pass: no band
    assert plan_model("m", _passes(50_000, 1.0), SLO(), {"cpus": 1}, None, "poll").host_band \
        is None


def test_a_fit_contradicted_by_a_passing_step_does_not_cap_cpu():
    # the cost per message falls as messages share each wake-up (poll above ~8000 here):
    # the median cost says the core fills at ~4900, but 5000 passed using 0.3 of it
    rows = _hold_rows([0.05, 0.8, 0.85, 0.5, 0.3])
    p = plan_model("m", rows, SLO(), HOST, "max", "poll")
    assert p.capacity == 5000 and p.saturated_at is None
    assert cpu_connections(p.cpu_fit, p.messages_per_conn_s, 1) < 5000
    assert p.host_capacity["CPU"] == int(1 / (p.cores_per_1000 / 1000)) > 5000
