"""The user groups' finding (lab/analysis/group_findings.py) on a run written
by the lab's own writers (tests/groupkit.py): the group that suffered, what
held the server, and the best model's figure for the same group."""

from __future__ import annotations

import copy

import pytest
from groupkit import STEPS, slow_clients_run

from lab.analysis import group_findings as gf
from lab.analysis.expect import summary
from lab.analysis.headline import headline
from lab.errors import InputError
from lab.results.groups import FILE

STARVED = ("threadpool at step 1 (48 users): the fast group's connects timed out (312 connect "
           "failures) while 16 slowloris clients held its 8 workers; epoll: p99 0.4 ms, no "
           "errors.")


def test_the_starved_group_is_named_with_the_pools_evidence_and_the_best_model(tmp_path):
    run = slow_clients_run(tmp_path)
    (found,) = gf.findings(run)
    assert found.text == STARVED
    assert (found.model, found.step, found.group, found.best) == ("threadpool", 1, "fast",
                                                                  "epoll")
    assert found.best_p99_ms == 0.4 and found.best_error_rate == 0.0


def test_the_finding_reaches_the_console_headline_and_json(tmp_path):
    run = slow_clients_run(tmp_path)
    assert headline(run)[-1] == STARVED
    (entry,) = summary(run, [], 0)["groups"]
    assert entry["text"] == STARVED and entry["what"].startswith("connects timed out")


def test_a_group_slow_on_every_model_alike_is_not_named(tmp_path):
    """Slowloris takes 32 s per echo everywhere (it dribbles): that is its
    shape, not a model's fault; with the pool unstarved nothing is named."""
    steps = copy.deepcopy(STEPS)
    steps["threadpool"][1][0]["fast"] = dict(steps["epoll"][1][0]["fast"], p99_ms=0.9)
    assert gf.findings(slow_clients_run(tmp_path, steps)) == []


def test_a_p99_ten_times_the_best_models_is_suffering_even_when_both_miss(tmp_path):
    steps = copy.deepcopy(STEPS)
    steps["epoll"][1][0]["fast"]["p99_ms"] = 60.0  # epoll misses the 50 ms SLO too
    steps["threadpool"][1][0]["fast"] = dict(steps["epoll"][1][0]["fast"], p99_ms=700.0)
    (found,) = gf.findings(slow_clients_run(tmp_path, steps))
    assert found.what == "p99 700.0 ms (SLO 50 ms)" and "epoll: p99 60.0 ms" in found.text
    steps["threadpool"][1][0]["fast"]["p99_ms"] = 400.0  # under 10x: both just missed
    assert gf.findings(slow_clients_run(tmp_path / "b", steps)) == []


def test_a_run_without_groups_has_no_finding_and_no_extra_sentence(tmp_path):
    run = slow_clients_run(tmp_path, groups=False)
    assert not (run.path / FILE).exists()
    assert gf.findings(run) == [] and gf.latency_series(run) == {}
    assert len(headline(run)) == 2 and summary(run, [], 0)["groups"] == []


def test_latency_series_per_model_and_group_in_step_order(tmp_path):
    series = gf.latency_series(slow_clients_run(tmp_path))
    assert list(series) == [("threadpool", "fast"), ("threadpool", "slowloris"),
                            ("epoll", "fast"), ("epoll", "slowloris")]
    assert series["threadpool", "fast"] == ([24.0], [3.0])  # no echo at step 1: no point
    assert series["epoll", "fast"] == ([24.0, 48.0], [0.3, 0.4])


def test_a_damaged_groups_csv_is_bad_input_naming_the_line(tmp_path):
    run = slow_clients_run(tmp_path)
    path = run.path / FILE
    lines = path.read_text().splitlines()
    lines[1] = lines[1].replace(",400,", ",inf,", 1)  # threadpool, step 0, fast
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(InputError, match=r"groups.csv: line 2: column echo_count"):
        gf.findings(run)


def test_a_collapsed_echo_rate_is_suffering_even_with_a_fine_p99(tmp_path):
    """As measured here: the fast clients that got a worker echoed quickly
    (p99 17 ms), but 32 of them managed 2 echoes/s where epoll gave 2,137/s."""
    steps = copy.deepcopy(STEPS)
    steps["threadpool"][1][0]["fast"].update(p99_ms=16.9, p50_ms=10.0, echo_count=24, rps=2.0,
                                             failures={}, connect_failures={})
    steps["epoll"][1][0]["fast"]["rps"] = 2137.2
    steps["epoll"][1][0]["slowloris"] = dict(steps["epoll"][1][0]["slowloris"], rps=4.0)
    (found,) = gf.findings(slow_clients_run(tmp_path, steps))
    assert found.text == (
        "threadpool at step 1 (48 users): the fast group's echoes fell to 2.0/s (epoll gave "
        "the same group 2,137/s) while 16 slowloris clients held its 8 workers; epoll: p99 "
        "0.4 ms, no errors.")
    assert found.group == "fast"  # slowloris at 1/s against 4/s is not a tenth
