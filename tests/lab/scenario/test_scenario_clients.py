"""The load keys of slow and varied clients and user groups (issue 19): each
parses, dumps and reads back; each bad value is exit 2 naming the field and
the fix; the Locust command carries them; groups.csv splits a step by group."""

from __future__ import annotations

import json

import pytest

from lab.backends.locust_cmd import load_options, user_classes, worker_command
from lab.results.groups import COLUMNS, append_groups, read_groups_csv
from lab.scenario.loader import parse_scenario, scenario_to_dict, scenario_to_yaml
from lab.scenario.types import ExponentialPace, GroupSpec, LoadSpec, SizeDistribution, Step
from loadgen.groups import parse_groups
from tests.scenariokit import assert_load_line_refused

CLIENTS = """\
servers: [epoll]
load:
  steps: [10]
  message_size: {median: 512, max: 65536}
  pace: {mean: 250ms}
  send_chunk: 1
  send_gap: 500ms
  recv_buffer: 4096
  read_chunk: 100
  read_gap: 2ms
  groups:
    - {name: fast, weight: 2, user: idle}
    - {name: slowloris, send_chunk: 1, send_gap: 0.5, message_size: 100, pace: 2s,
       recv_buffer: 2048, read_chunk: 10, read_gap: 0}
"""


def load_of(text: str) -> LoadSpec:
    return parse_scenario(text, "t.yaml").load


def test_every_client_key_parses_into_the_load():
    load = load_of(CLIENTS)
    assert load.message_size == SizeDistribution(512, 65536)
    assert (load.message_size.median, load.message_size.max) == (512, 65536)
    assert load.pace_s == ExponentialPace(0.25) and float(load.pace_s) == 0.25
    assert (load.send_chunk, load.send_gap_s, load.recv_buffer) == (1, 0.5, 4096)
    assert (load.read_chunk, load.read_gap_s) == (100, 0.002)
    assert load.groups == (
        GroupSpec(name="fast", weight=2, user="idle"),
        GroupSpec(name="slowloris", send_chunk=1, send_gap_s=0.5, message_size=100,
                  pace_s=2.0, recv_buffer=2048, read_chunk=10, read_gap_s=0.0))


def test_the_client_keys_round_trip_and_stay_out_of_a_plain_dump():
    scenario = parse_scenario(CLIENTS, "t.yaml")
    again = parse_scenario(scenario_to_yaml(scenario), "resolved.yaml")
    assert again == scenario
    assert isinstance(again.load.pace_s, ExponentialPace)
    dumped = scenario_to_dict(scenario)["load"]
    assert dumped["message_size"] == {"median": 512, "max": 65536}
    assert dumped["pace"] == {"mean": "0.25s"}
    assert dumped["groups"][0] == {"name": "fast", "weight": 2, "user": "idle"}
    plain = scenario_to_dict(parse_scenario("servers: [epoll]\nload: {steps: [10]}\n", "p"))
    assert not {"send_chunk", "send_gap", "recv_buffer", "read_chunk", "read_gap",
                "groups"} & set(plain["load"])
    assert load_of("servers: [epoll]\nload: {steps: [10]}\n") == LoadSpec(
        steps=(Step(10, 10.0),))


def test_a_fixed_size_is_not_a_distribution_and_a_mean_is_not_a_fixed_pace():
    load = load_of("servers: [epoll]\nload: {steps: [10], message_size: 512, pace: 1s}\n")
    assert load.message_size == 512 and not isinstance(load.message_size, SizeDistribution)
    assert ExponentialPace(1.0) != 1.0 and SizeDistribution(512, 512) != 512


@pytest.mark.parametrize(("line", "message"), [
    ("send_chunk: 0", "load.send_chunk: 0 is too small; use a number of at least 1"),
    ("read_chunk: 0", "load.read_chunk: 0 is too small; use a number of at least 1"),
    ("send_gap: -1s", "load.send_gap: -1s is below zero; give 0 or a duration"),
    ("read_gap: -0.5", "load.read_gap: -0.5 is below zero; give 0 or a duration"),
    ("read_gap: soon", "load.read_gap: 'soon' is not a duration"),
    ("recv_buffer: 1023", "load.recv_buffer: 1023 is too small; use a number of at least 1024"),
    ("message_size: 1048577", "load.message_size: 1048577 is above 1 MiB; give at most 1048576"),
    ("message_size: {median: 10, max: 2000000}", "load.message_size.max: 2000000 is above 1 MiB"),
    ("message_size: {median: 100, max: 10}", "load.message_size.median: 100 is above max (10)"),
    ("message_size: {median: 100}", "load.message_size.max: is missing"),
    ("message_size: {mean: 100, max: 10}", "load.message_size.mean: unknown key"),
    ("pace: {mean: 0s}", "load.pace.mean: '0s' must be longer than zero"),
    ("pace: {median: 1s}", "load.pace.median: unknown key"),
    ("groups: []", "load.groups: is empty"),
    ("groups: [{weight: 1}]", "load.groups[0].name: is missing"),
    ("groups: [{name: a, weight: 0}]", "load.groups[0].weight: 0 is too small"),
    ("groups: [{name: a, weight: -2}]", "load.groups[0].weight: -2 is too small"),
    ("groups: [{name: a}, {name: a}]", "load.groups[1].name: 'a' is used twice"),
    ("groups: [{name: a, send_chunk: 0}]", "load.groups[0].send_chunk: 0 is too small"),
    ("groups: [{name: a, read_gap: -1}]", "load.groups[0].read_gap: -1 is below zero"),
    ("groups: [{name: a, recv_buffer: 10}]", "load.groups[0].recv_buffer: 10 is too small"),
    ("groups: [{name: a, message_size: 2097152}]", "load.groups[0].message_size: 2097152 is"),
    ("groups: [{name: a, user: fast}]", "load.groups[0].user: 'fast' is not a user kind"),
    ("groups: [{name: a, sned_gap: 1}]", "did you mean 'send_gap'?"),
    ("groups: [{name: 'a b'}]", "load.groups[0].name: 'a b' is not valid here"),
])
def test_bad_client_values_exit_2_naming_the_field_and_the_fix(line, message):
    assert_load_line_refused(line, message)


def test_zero_gaps_are_allowed():
    load = load_of("servers: [epoll]\nload: {steps: [10], send_gap: 0, read_gap: 0ms}\n")
    assert load.send_gap_s == load.read_gap_s == 0.0


def test_the_locust_command_carries_the_client_keys():
    load = load_of(CLIENTS)
    opts = load_options(load)

    def value(flag: str) -> str:
        return opts[opts.index(flag) + 1]

    assert value("--message-size") == "65536" and value("--message-size-median") == "512"
    assert value("--message-size-max") == "65536" and value("--pace") == "0.25"
    assert value("--pace-dist") == "exponential" and value("--send-chunk") == "1"
    assert value("--send-gap") == "0.5" and value("--recv-buffer") == "4096"
    assert value("--read-chunk") == "100" and value("--read-gap") == "0.002"
    groups = json.loads(value("--groups"))
    assert groups[0] == {"name": "fast", "weight": 2, "user": "idle"}
    assert groups[1] == {"name": "slowloris", "weight": 1, "user": "echo", "message_size": 100,
                         "message_size_median": 0, "pace": 2.0, "pace_dist": "fixed",
                         "send_chunk": 1, "send_gap": 0.5, "recv_buffer": 2048,
                         "read_chunk": 10, "read_gap": 0.0}
    assert parse_groups(value("--groups")) == tuple(groups)  # the loadgen accepts it
    assert user_classes(load) == ["Group_fast", "Group_slowloris"]
    worker = worker_command(load, master_host="127.0.0.1")
    assert worker[-2:] == ["Group_fast", "Group_slowloris"] and "--groups" in worker


def test_a_plain_load_adds_no_client_options():
    opts = load_options(load_of("servers: [epoll]\nload: {steps: [10], pace: 0.5}\n"))
    assert opts[:4] == ["--message-size", "64", "--pace", "0.5"]
    assert not {"--pace-dist", "--send-chunk", "--recv-buffer", "--groups",
                "--message-size-median"} & set(opts)


STEP = {"step": 1, "groups": {
    "slow": {"users": 16, "connected": 16, "rps": 2.5, "p50_ms": 600.0, "p99_ms": 700.0,
             "max_ms": 710.0, "echo_count": 30, "failures": {}, "connect_failures": {},
             "connect_p99_ms": 0.2, "hold_failures": {}},
    "fast": {"users": 32, "connected": 20, "rps": 100.0, "p50_ms": 1.0, "p99_ms": 900.0,
             "max_ms": 5000.0, "echo_count": 90, "failures": {"timeout": 10},
             "connect_failures": {"timeout": 8}, "connect_p99_ms": 3000.0,
             "hold_failures": {"timeout": 2}}}}


def test_groups_csv_has_a_row_per_model_step_and_group(tmp_path):
    append_groups(tmp_path, "threadpool", STEP, repeat=0)
    append_groups(tmp_path, "epoll", {"step": 1}, repeat=0)  # no groups: nothing
    append_groups(tmp_path, "epoll", {**STEP, "step": 2}, repeat=1)
    rows = read_groups_csv(tmp_path / "groups.csv")
    assert list(rows[0]) == list(COLUMNS)
    assert [(r["model"], r["step"], r["group"]) for r in rows] == [
        ("threadpool", "1", "fast"), ("threadpool", "1", "slow"),
        ("epoll", "2", "fast"), ("epoll", "2", "slow")]
    fast = rows[0]
    assert fast["failures"] == "10" and float(fast["error_rate"]) == pytest.approx(0.1)
    assert fast["failure_kinds"] == "timeout=10" and fast["connect_failures"] == "8"
    assert fast["hold_failures"] == "timeout=2" and fast["connect_p99_ms"] == "3000.0"
    assert rows[1]["error_rate"] == "0.0" and rows[2]["repeat"] == "1"


def test_no_groups_no_file(tmp_path):
    append_groups(tmp_path, "epoll", {"step": 0, "echo_count": 5})
    assert not (tmp_path / "groups.csv").exists()
