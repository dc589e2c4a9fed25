"""Reading run directories: typed rows, tolerant metadata, normalized host facts."""

from __future__ import annotations

import json

import pytest

from lab.results.reader import load_run, normalize_host, parse_failure_kinds, seconds

HEADER = "model,step,target_connections,connected,p99_ms,limit,failure_kinds\n"


@pytest.mark.parametrize("value, want", [
    ("1s", 1.0), ("500ms", 0.5), ("2m", 120.0), (0.25, 0.25), ("3", 3.0), ("x", None), (None, None),
])
def test_seconds(value, want):
    assert seconds(value) == want


def test_normalize_host_reads_docker_spellings():
    host = normalize_host({"ncpu": 8, "memory_bytes": 10, "nofile_hard": 1024,
                           "nofile_max_grantable": 20000, "ip_local_port_range": "1024\t65000"})
    assert (host["cpus"], host["mem_bytes"], host["nofile_hard"]) == (8, 10, 20000)
    assert host["port_range"] == [1024, 65000]


def test_rows_are_typed_and_empty_cells_none(tmp_path):
    (tmp_path / "steps.csv").write_text(HEADER + "epoll,2,1000,998,,EMFILE,EMFILE=2;timeout=1\n"
                                        "epoll,1,500,500,1.5,,\n")
    run = load_run(tmp_path)
    first, second = run.rows_for("epoll")
    assert (first["step"], first["p99_ms"], first["limit"]) == (1, 1.5, None)
    assert (second["connected"], second["p99_ms"], second["limit"]) == (998, None, "EMFILE")
    assert parse_failure_kinds(second["failure_kinds"]) == {"EMFILE": 2, "timeout": 1}
    assert run.meta == {} and run.host == normalize_host({}) and run.pace_s is None
    assert run.first_limit("epoll") == (second, "EMFILE")


def test_limit_only_in_run_json_is_found(tmp_path):
    (tmp_path / "steps.csv").write_text(HEADER + "x,1,10,10,1,,\n")
    (tmp_path / "run.json").write_text('{"models": {"x": {"limit": "crash"}}}')
    run = load_run(tmp_path)
    assert run.first_limit("x") == (run.rows[0], "crash")


def test_bad_run_json_is_input_error(tmp_path):
    from lab.errors import InputError

    (tmp_path / "steps.csv").write_text(HEADER)
    (tmp_path / "run.json").write_text("{")
    with pytest.raises(InputError, match="run.json"):
        load_run(tmp_path)


def test_t_end_comes_from_run_json_when_csv_rounds_it(tmp_path):
    (tmp_path / "steps.csv").write_text("model,step,t_end\nx,0,1.79585e+09\nx,1,1.79585e+09\n")
    (tmp_path / "run.json").write_text(json.dumps({"rows": [
        {"model": "x", "step": 0, "t_end": 1795845502.5},
        {"model": "x", "step": 1, "t_end": 1795845507.0}]}))
    assert [r["t_end"] for r in load_run(tmp_path).rows] == [1795845502.5, 1795845507.0]


def test_a_newer_format_is_refused_with_the_fix(tmp_path):
    from lab.errors import InputError
    from lab.results.formats import FORMAT_VERSION

    (tmp_path / "steps.csv").write_text(HEADER + "epoll,1,500,500,1.5,,\n")
    (tmp_path / "run.json").write_text(json.dumps({"format_version": FORMAT_VERSION + 1}))
    with pytest.raises(InputError, match="newer iolab.*Update iolab"):
        load_run(tmp_path)


def test_the_scenario_is_read_back_typed(tmp_path):
    from lab.scenario.loader import parse_scenario, scenario_to_dict

    scenario = parse_scenario("servers: [select, {model: epoll, limits: {nofile: 4096}}]\n"
                              "load: {steps: [100, 200], pace: 500ms}\nslo: {p99_ms: 20}\n",
                              "t.yaml")
    (tmp_path / "steps.csv").write_text(HEADER + "epoll,1,100,100,1.5,,\n")
    (tmp_path / "run.json").write_text(json.dumps({"scenario": scenario_to_dict(scenario)}))
    run = load_run(tmp_path)
    assert run.scenario == scenario
    assert run.server("epoll").limits.nofile == 4096 and run.pace_s == 0.5
    assert run.slo.p99_ms == 20 and run.server("nope") is None
