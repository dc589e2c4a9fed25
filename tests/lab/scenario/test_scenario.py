"""Scenario validation: the invalid corpus, every shipped scenario, round trips,
positions and several errors at once, per-model keys, the schema tables."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest
import yaml
from paths import ROOT

from contract.models import MODELS, ON_FD_LIMIT_MODELS, WORKERS_MODELS
from lab import cli
from lab.errors import InputError
from lab.scenario import schema
from lab.scenario.errors import ScenarioError
from lab.scenario.loader import (
    load_scenario,
    parse_scenario,
    scenario_to_dict,
    scenario_to_yaml,
    select_servers,
)
from lab.scenario.types import LoadSpec, ServerSpec, Step

INVALID = sorted((ROOT / "tests/data/scenarios/invalid").glob("*.yaml"))
SHIPPED = [ROOT / "lab.yaml", *sorted((ROOT / "scenarios").glob("*.yaml"))]
RUN_DIRS = sorted(p.parent for p in (ROOT / "tests/data/runs").glob("*/scenario.yaml"))
# Files that cannot carry an "# expect:" header of their own.
NO_HEADER = {"empty.yaml": "the file is empty", "plain_text.yaml": "expected a mapping"}


def _expectations(path: Path) -> tuple[str, int | None]:
    text = path.read_text()
    if path.name in NO_HEADER:
        return NO_HEADER[path.name], 1
    expect = re.search(r"^# expect: (.+)$", text, re.M)
    assert expect, f"{path.name} needs an '# expect: <message part>' header"
    line = re.search(r"^# expect-line: (\d+)$", text, re.M)
    return expect.group(1), int(line.group(1)) if line else None


def test_corpus_is_big_enough():
    assert len(INVALID) >= 30


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.stem)
def test_invalid_scenario_names_file_line_and_field(path):
    expected, line = _expectations(path)
    with pytest.raises(InputError) as info:
        load_scenario(path)
    message = str(info.value)
    assert info.value.exit_code == 2
    assert message.startswith(f"{path}:"), message
    for each in message.splitlines():  # file:line:column: on every line
        assert re.match(rf"^{re.escape(str(path))}:\d+:\d+: ", each), message
    assert expected in message
    if line is not None:  # the first error in file order is on that line
        assert re.match(rf"^{re.escape(str(path))}:{line}:\d+: ", message), message


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_scenarios_validate_and_round_trip(path):
    scenario = load_scenario(path)
    assert scenario.servers and scenario.load.steps
    again = parse_scenario(scenario_to_yaml(scenario), "resolved.yaml")
    assert again == dataclasses.replace(scenario, source_path=None)


def test_shipped_scenarios_cover_the_brief():
    names = {p.stem for p in SHIPPED}
    assert {"all-models", "idle-vs-active", "threads-vs-epoll", "custom-server",
            "multi-host", "slow-clients", "waiting-handler"} <= names


def test_defaults_fill_in_and_merge_per_key():
    scenario = parse_scenario(
        "defaults: {limits: {nofile: 4096, backlog: 64}, work_us: 5}\n"
        "servers:\n  - select\n  - {model: epoll, limits: {backlog: 8}}\n"
        "load: {hold: 2s, steps: [10, {connections: 20, hold: 500ms}]}\n", "t.yaml")
    select, epoll = scenario.servers
    assert (select.limits.nofile, select.limits.backlog, select.work_us) == (4096, 64, 5)
    assert (epoll.limits.nofile, epoll.limits.backlog) == (4096, 8)
    assert [(s.connections, s.hold_s) for s in scenario.load.steps] == [(10, 2.0), (20, 0.5)]
    assert scenario.name == "t"


def test_hosts_default_to_the_first_declared_host():
    scenario = parse_scenario(
        "hosts: [{name: a, address: 198.18.0.2}, {name: b, address: 127.0.0.2}]\n"
        "servers: [epoll]\nload: {steps: [10]}\n", "t.yaml")
    assert scenario.servers[0].host == "a"
    assert scenario.placement.master == "a" and scenario.placement.workers == ("a",)


def test_external_target_allowed_only_with_opt_in():
    text = "servers: [epoll]\nhosts: [{name: a, address: 10.0.0.9}]\nload: {steps: [10]}\n"
    with pytest.raises(InputError, match="allow_external_targets"):
        parse_scenario(text, "t.yaml")
    scenario = parse_scenario("allow_external_targets: true\n" + text, "t.yaml")
    assert scenario.hosts[0].address == "10.0.0.9"


def test_custom_server_command_string_is_split():
    scenario = parse_scenario(
        "servers: [{name: mine, command: \"python3 srv.py --port 9000\", port: 9000}]\n"
        "load: {steps: [10]}\n", "t.yaml")
    assert scenario.servers[0].command == ("python3", "srv.py", "--port", "9000")
    assert scenario.servers[0].is_custom


def test_select_servers_keeps_order_and_suggests():
    scenario = load_scenario(ROOT / "lab.yaml")
    assert [s.name for s in select_servers(scenario, ["epoll", "select"]).servers] == [
        "epoll", "select"]
    with pytest.raises(InputError, match="did you mean 'epoll'"):
        select_servers(scenario, ["epol"])


def test_missing_file_is_input_error(tmp_path):
    with pytest.raises(InputError, match="no such scenario file"):
        load_scenario(tmp_path / "nope.yaml")


# -- positions: file:line:column --------------------------------------------------------------

def _errors(text: str, filename: str = "t.yaml") -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, filename)
    assert info.value.exit_code == 2 and isinstance(info.value, InputError)
    assert str(info.value) == "\n".join(info.value.errors)
    return info.value.errors


def test_messages_give_line_and_column_of_the_node():
    errors = _errors("servers:\n  - select\n  - model: epol\nload:\n  steps: [10]\n"
                     "  pace: [1s]\n")
    assert errors == [
        "t.yaml:3:12: servers[1].model: 'epol' is not a model; did you mean 'epoll'?",
        "t.yaml:6:9: load.pace: expected a duration; got a list",
    ]


def test_unknown_key_points_at_the_key_and_flow_values_at_the_value():
    errors = _errors("servers: [epoll]\nload: {steps: [10], pace: -1s, holdd: 2s}\n")
    assert errors == [
        "t.yaml:2:27: load.pace: '-1s' is not a duration; write e.g. 10s, 500ms or 2m",
        "t.yaml:2:32: load.holdd: unknown key; did you mean 'hold'?",
    ]


def test_yaml_syntax_error_has_a_column_too():
    (error,) = _errors("servers: [epoll\nload: {steps: [1]}\n")
    assert re.match(r"^t\.yaml:2:5: not valid YAML: ", error), error


# -- every error in the file, not only the first -------------------------------------------

THREE_BAD = ("backend: kubernetes\n"
             "servers:\n  - epoll\n  - model: pol\n"
             "load:\n  pace: soon\n  steps: [10, 20]\n")


def test_three_bad_fields_are_three_lines_in_file_order():
    assert _errors(THREE_BAD) == [
        "t.yaml:1:10: backend: 'kubernetes' is not a backend; use one of: auto, docker, local",
        "t.yaml:4:12: servers[1].model: 'pol' is not a model; did you mean 'poll'?",
        "t.yaml:6:9: load.pace: 'soon' is not a duration; write e.g. 10s, 500ms or 2m",
    ]


def test_errors_are_sorted_by_position_not_by_when_they_were_found():
    # hosts are read before servers, the top-level name first of all
    errors = _errors("servers: [{model: epoll, work_us: -1}]\nname: 'a b'\n"
                     "hosts: [{name: h, address: 10.0.0.1}]\nload: {steps: [1, 1]}\n")
    assert [e.split(": ")[1] for e in errors] == [
        "servers[0].work_us", "name", "hosts[0].address", "load.steps[1]"]
    assert [int(e.split(":")[1]) for e in errors] == [1, 2, 3, 4]


def test_validate_prints_every_error_and_exits_2(tmp_path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text(THREE_BAD)
    assert cli.main(["validate", str(bad)]) == 2
    err = capsys.readouterr().err.splitlines()
    assert [line.split(": ")[1] for line in err] == ["backend", "servers[1].model", "load.pace"]
    assert all(line.startswith(f"{bad}:") for line in err)
    assert cli.main(["validate", str(ROOT / "lab.yaml")]) == 0


def test_a_bad_field_gets_its_default_and_checking_goes_on():
    # a bad 'user' must not also report active_users as "only with user: idle";
    # a bad step is reported once and the next step is still checked
    errors = _errors("servers: [epoll]\n"
                     "load: {user: idel, active_users: 5, steps: [10, -1, 5]}\n")
    assert [e.split(": ", 2)[1:] for e in errors] == [
        ["load.user", "'idel' is not a user kind; did you mean 'idle'?"],
        ["load.steps[1]", "-1 is too small; use a number of at least 1"],
        ["load.steps[2]", "5 is not above the previous step (10); steps must increase"],
    ]


@pytest.mark.parametrize("text", [
    "servers: 5\nload: {steps: [10]}\n",
    "servers: []\nload: {steps: [10]}\n",
    "servers: [[epoll]]\nload: {steps: [10]}\n",
    "servers: [{model: epoll, limits: 3}]\nload: 7\n",
    "servers: [{model: epoll, limits: {sysctls: [1]}}]\nload: {steps: [10]}\n",
    "servers: [{command: 'a \"b', port: 9}]\nload: {steps: [10]}\n",
    "defaults: 3\nservers: [epoll]\nload: {steps: [10]}\n",
    "defaults: {limits: [1]}\nservers: [epoll]\nload: {steps: [10]}\n",
    "servers: [epoll]\nload: {user: idle, active_users: 3}\n",
    "servers: [epoll]\nload: {user: idle, active_users: 3, steps: nope}\n",
    "servers: [epoll]\nload: {steps: [{hold: 1s}, {connections: x}]}\n",
    "servers: [epoll]\nload: {steps: [[1]]}\n",
    "hosts: [5, {address: 127.0.0.2}]\nservers: [{model: epoll, host: a}]\n"
    "load: {steps: [1]}\n",
    "hosts: 5\nplacement: [x]\nhost_limits: 3\nslo: 1\nservers: [epoll]\nload: {steps: [1]}\n",
    "{[a]: 1, {b: 2}: 3, servers: [epoll], load: {steps: [1]}}\n",
    "servers: [!!python/object:os.system x]\nload: {steps: [1]}\n",
    "base: &b {steps: [1]}\nservers: [epoll]\nload: {<<: 5}\n",
    "name: [a]\ndescription: {}\nservers: [epoll]\nload: {steps: [1]}\n",
])
def test_a_broken_section_is_an_input_error_not_a_crash(text):
    errors = _errors(text)
    assert errors and all(re.match(r"^t\.yaml:\d+:\d+: ", e) for e in errors), errors


# -- keys for some models only ----------------------------------------------------------------

def test_workers_only_on_threadpool_servers():
    (error,) = _errors("servers:\n  - threadpool\n  - model: epoll\n    workers: 8\n"
                       "load: {steps: [10]}\n", "lab.yaml")
    assert error == ("lab.yaml:4:5: servers[1].workers: only applies to threadpool "
                     "(the pool size); remove it from 'epoll'")
    ok = parse_scenario("servers: [{model: threadpool, workers: 8}]\nload: {steps: [10]}\n")
    assert ok.servers[0].workers == 8


def test_on_fd_limit_only_on_select_servers():
    (error,) = _errors("servers: [{model: poll, on_fd_limit: crash}]\nload: {steps: [10]}\n")
    assert error.startswith("t.yaml:1:25: servers[0].on_fd_limit: only applies to select (")
    assert error.endswith("); remove it from 'poll'")
    ok = parse_scenario("servers: [{model: select, on_fd_limit: crash}]\nload: {steps: [10]}\n")
    assert ok.servers[0].on_fd_limit == "crash"


def test_custom_servers_take_neither():
    errors = _errors("servers:\n  - {name: mine, command: ./srv, port: 9, workers: 2,"
                     " on_fd_limit: crash}\nload: {steps: [10]}\n")
    assert [e.split(": ")[1] for e in errors] == ["servers[0].workers", "servers[0].on_fd_limit"]
    assert all("a custom server takes its own options in 'command'" in e for e in errors)


def test_defaults_apply_only_to_the_models_they_fit():
    scenario = parse_scenario(
        "defaults: {workers: 16, on_fd_limit: crash, work_us: 3}\n"
        "servers:\n  - select\n  - threadpool\n  - epoll\n  - {model: threadpool, name: tp4,"
        " workers: 4}\n  - {name: mine, command: ./srv, port: 9}\n"
        "load: {steps: [10]}\n", "t.yaml")
    got = {s.name: (s.workers, s.on_fd_limit, s.work_us) for s in scenario.servers}
    assert got == {"select": (None, "crash", 3), "threadpool": (16, "refuse", 3),
                   "epoll": (None, "refuse", 3), "tp4": (4, "refuse", 3),
                   "mine": (None, "refuse", 3)}


def test_model_groups_come_from_the_contract():
    assert schema.SERVER.field("workers").models == WORKERS_MODELS
    assert schema.SERVER.field("on_fd_limit").models == ON_FD_LIMIT_MODELS
    for model in sorted(set(MODELS) - WORKERS_MODELS):
        with pytest.raises(ScenarioError, match="only applies to threadpool"):
            parse_scenario(f"servers: [{{model: {model}, workers: 2}}]\nload: {{steps: [1]}}\n")


def test_block_us_and_nodelay_are_server_keys_with_defaults():
    scenario = parse_scenario(
        "defaults: {block_us: 3000, nodelay: false}\n"
        "servers:\n  - epoll\n  - {model: threads, block_us: 0, nodelay: true}\n"
        "  - {name: mine, command: ./srv, port: 9}\n"
        "load: {steps: [10]}\n", "t.yaml")
    got = {s.name: (s.block_us, s.nodelay) for s in scenario.servers}
    # defaults: apply to the built-in models only; a custom server keeps the dataclass default
    assert got == {"epoll": (3000, False), "threads": (0, True), "mine": (0, True)}
    plain = parse_scenario("servers: [epoll]\nload: {steps: [10]}\n", "t.yaml").servers[0]
    assert (plain.block_us, plain.nodelay) == (0, True)


@pytest.mark.parametrize("text, field, message", [
    ("servers: [{model: epoll, block_us: -1}]", "servers[0].block_us", "at least 0"),
    ("defaults: {block_us: -5}\nservers: [epoll]", "defaults.block_us", "at least 0"),
    ("servers: [{model: epoll, block_us: 1.5}]", "servers[0].block_us", "an integer"),
    ("servers: [{model: epoll, nodelay: 'no'}]", "servers[0].nodelay", "true or false"),
    ("servers: [{model: epoll, nodelay: 1}]", "servers[0].nodelay", "true or false"),
    ("defaults: {nodelay: off1}\nservers: [epoll]", "defaults.nodelay", "true or false"),
])
def test_bad_block_us_and_nodelay_name_the_field(text, field, message):
    errors = _errors(text + "\nload: {steps: [10]}\n")
    assert len(errors) == 1 and errors[0].split(": ")[1] == field, errors
    assert message in errors[0]


def test_the_worker_timeout_reaches_the_master_and_every_worker():
    """Both sides pace Locust's heartbeats for it (loadgen/listeners.py)."""
    from lab.backends.locust_cmd import master_command, worker_command

    load = parse_scenario("servers: [epoll]\nload: {steps: [10], worker_timeout: 2500ms}\n",
                          "t.yaml").load
    master = " ".join(master_command(load, target_host="127.0.0.1", target_port=9, workers=2,
                                     step_results="x"))
    worker = " ".join(worker_command(load, master_host="127.0.0.1"))
    assert "--worker-timeout 2.5 " in master and "--worker-timeout 2.5 " in worker
    default = parse_scenario("servers: [epoll]\nload: {steps: [10]}\n", "t.yaml").load
    assert "--worker-timeout 11 " in " ".join(worker_command(default, master_host="h"))


@pytest.mark.parametrize(("value", "message"), [
    ("500ms", "0.5s is below 1s"), ("0", "longer than zero"), ("soon", "not a duration")])
def test_a_worker_timeout_under_a_second_is_refused(value, message):
    errors = _errors(f"servers: [epoll]\nload: {{steps: [10], worker_timeout: {value}}}\n")
    assert len(errors) == 1 and errors[0].split(": ")[1] == "load.worker_timeout", errors
    assert message in errors[0]


@pytest.mark.parametrize("key", ["block_us: 100", "nodelay: false"])
def test_a_custom_server_refuses_the_built_in_handler_keys(key):
    errors = _errors(f"servers:\n  - {{name: mine, command: ./srv, port: 9, {key}}}\n"
                     "load: {steps: [10]}\n")
    field = key.split(":")[0]
    assert [e.split(": ")[1] for e in errors] == [f"servers[0].{field}"]
    assert "only applies to the built-in models" in errors[0]
    assert "a custom server takes its own options in 'command'; remove it" in errors[0]
    with pytest.raises(InputError) as info:
        parse_scenario(f"servers: [{{name: mine, command: ./srv, port: 9, {key}}}]\n"
                       "load: {steps: [10]}\n", "t.yaml")
    assert info.value.exit_code == 2


def test_block_us_and_nodelay_reach_the_server_command_and_its_defaults():
    from lab.backends.server_cmd import server_command
    from servers.cli import build_parser

    def command(text):
        spec = parse_scenario(f"servers: [{text}]\nload: {{steps: [1]}}\n", "t.yaml").servers[0]
        return server_command(spec, python="python", host="127.0.0.1", port=1, nofile="max")

    plain, waiting = command("epoll"), command("{model: epoll, block_us: 3000, nodelay: false}")
    assert plain[plain.index("--block-us") + 1] == "0" and "--no-nodelay" not in plain
    assert waiting[waiting.index("--block-us") + 1] == "3000" and "--no-nodelay" in waiting
    parsed = build_parser().parse_args(waiting[3:])
    assert (parsed.block_us, parsed.nodelay) == (3000, False)
    by_hand = build_parser().parse_args(["epoll"])  # a server started without the options
    assert (by_hand.block_us, by_hand.nodelay) == (ServerSpec("e").block_us,
                                                   ServerSpec("e").nodelay) == (0, True)


def test_a_legacy_run_dump_loads_only_as_a_run():
    legacy = "servers: [{model: epoll, on_fd_limit: refuse}]\nload: {steps: [10]}\n"
    with pytest.raises(ScenarioError, match="on_fd_limit: only applies to select"):
        parse_scenario(legacy, "scenario.yaml")
    scenario = parse_scenario(legacy, "scenario.yaml", from_run=True)
    assert scenario.servers[0] == ServerSpec(name="epoll", model="epoll")


@pytest.mark.parametrize("run_dir", RUN_DIRS, ids=lambda p: p.name)
def test_kept_run_directories_load_back(run_dir):
    """Runs written before the per-model rule (on_fd_limit on every server)."""
    text = (run_dir / "scenario.yaml").read_text()
    scenario = parse_scenario(text, str(run_dir / "scenario.yaml"), from_run=True)
    meta = json.loads((run_dir / "run.json").read_text())
    if isinstance(meta.get("scenario"), dict):
        assert parse_scenario(yaml.safe_dump(meta["scenario"]), "run.json",
                              from_run=True) == scenario
    assert parse_scenario(scenario_to_yaml(scenario), "again.yaml") == scenario


# -- the tables drive defaults and the dump ---------------------------------------------------

SECTIONS = [schema.LIMITS, schema.SERVER, schema.STEP, schema.LOAD, schema.SLO_TABLE,
            schema.HOST, schema.PLACEMENT, schema.HOST_LIMITS, schema.TOP]


@pytest.mark.parametrize("section", SECTIONS, ids=lambda s: s.name)
def test_every_dataclass_attribute_is_declared_once(section):
    attrs = [f.attr for f in section.fields if f.attr is not None]
    assert len(attrs) == len(set(attrs)) and len(section.keys) == len(set(section.keys))
    # Not what a file says: where it was, and what an override set aside (run.json keeps it).
    wanted = {f.name for f in dataclasses.fields(section.cls)} - {"source_path",
                                                                   "expect_not_checked"}
    assert set(attrs) == wanted


def test_defaults_are_the_dataclass_defaults():
    scenario = parse_scenario("servers: [epoll]\nload: {steps: [10]}\n", "t.yaml")
    assert scenario.servers == (ServerSpec(name="epoll", model="epoll"),)
    assert scenario.load == LoadSpec(steps=(Step(10, schema.DEFAULT_HOLD_S),))


FULL = """\
name: full
description: every key set to something that is not its default
backend: docker
allow_external_targets: true
hosts:
  - {name: a, endpoint: "ssh://lab@10.0.0.1", address: 10.0.0.1}
  - {name: b, endpoint: local, address: 127.0.0.3}
placement: {master: b, workers: [a, b]}
host_limits: {file_max: 2000000, raise_host_limits: true}
servers:
  - model: select
    name: sel
    on_fd_limit: crash
    work_us: 7
    block_us: 250
    nodelay: false
    host: b
    limits: {nofile: 4096, backlog: 16, sysctls: {net.core.somaxconn: "64"}, memory: 1g,
             cpuset: 0-1}
  - {model: threadpool, workers: 12}
  - {name: mine, image: "my/echo:1", command: ["{python}", "srv.py"], port: 9100}
load:
  user: idle
  active_users: 3
  message_size: 128
  pace: 250ms
  connect_rate: 99.5
  workers: 3
  schedule: fixed
  connect_timeout: 2m
  io_timeout: 1500ms
  worker_timeout: 3s
  hold: 4s
  steps: [10, {connections: 20, hold: 1h}]
slo: {p99_ms: 12.5, error_rate: 0.5}
expect: {sel: {limit: EMFILE, holds: 10}}
"""


def test_the_tables_dump_every_key_under_its_yaml_name():
    scenario = parse_scenario(FULL, "full.yaml")
    data = scenario_to_dict(scenario)
    assert list(data) == [k for k in schema.TOP.keys if k != "defaults"]
    assert data["load"] == {
        "user": "idle", "message_size": 128, "pace": "0.25s", "connect_rate": 99.5,
        "workers": 3, "schedule": "fixed", "connect_timeout": "120s", "io_timeout": "1.5s",
        "worker_timeout": "3s",
        "steps": [{"connections": 10, "hold": "4s"}, {"connections": 20, "hold": "3600s"}],
        "active_users": 3, "repeat": 1}
    sel, pool, mine = data["servers"]
    assert sel["limits"] == {"nofile": 4096, "backlog": 16, "memory": "1g", "cpuset": "0-1",
                             "sysctls": {"net.core.somaxconn": "64"}}
    assert sel["on_fd_limit"] == "crash" and "workers" not in sel
    assert pool["workers"] == 12 and "on_fd_limit" not in pool
    assert mine["command"] == ["{python}", "srv.py"] and "model" not in mine
    assert not {"workers", "on_fd_limit"} & set(mine)
    assert data["host_limits"] == {"file_max": 2000000, "raise_host_limits": True}
    assert data["placement"] == {"master": "b", "workers": ["a", "b"]}


def test_every_key_round_trips():
    scenario = parse_scenario(FULL, "full.yaml")
    again = parse_scenario(scenario_to_yaml(scenario), "resolved.yaml")
    assert again == scenario
    for attr in ("pace_s", "spawn_rate", "connect_timeout_s", "io_timeout_s", "worker_timeout_s",
                 "workers"):
        assert getattr(again.load, attr) != getattr(LoadSpec(), attr), attr
