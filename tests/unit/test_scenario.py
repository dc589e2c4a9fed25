"""Scenario validation: the invalid corpus, every shipped scenario, round trips."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import pytest

from lab.errors import InputError
from lab.scenario.loader import load_scenario, parse_scenario, scenario_to_yaml, select_servers

ROOT = Path(__file__).resolve().parents[2]
INVALID = sorted((ROOT / "tests/data/scenarios/invalid").glob("*.yaml"))
SHIPPED = [ROOT / "lab.yaml", *sorted((ROOT / "scenarios").glob("*.yaml"))]
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
    assert re.match(rf"^{re.escape(str(path))}:\d+: ", message), message
    assert expected in message
    if line is not None:
        assert message.startswith(f"{path}:{line}: "), message


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_scenarios_validate_and_round_trip(path):
    scenario = load_scenario(path)
    assert scenario.servers and scenario.load.steps
    again = parse_scenario(scenario_to_yaml(scenario), "resolved.yaml")
    assert again == dataclasses.replace(scenario, source_path=None)


def test_shipped_scenarios_cover_the_brief():
    names = {p.stem for p in SHIPPED}
    assert {"all-models", "idle-vs-active", "threads-vs-epoll", "custom-server",
            "multi-host"} <= names


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
