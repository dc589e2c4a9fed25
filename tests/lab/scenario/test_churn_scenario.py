"""``load.user: churn``, ``messages_per_connection`` and the connect SLO:
parsed, refused with file:line and a fix, and passed to the load generator."""

from __future__ import annotations

import pytest

from lab.backends.locust_cmd import load_options, user_classes
from lab.scenario.errors import ScenarioError
from lab.scenario.loader import load_scenario, parse_scenario, scenario_to_yaml

CHURN = ("servers: [epoll]\nslo: {connect_p99_ms: 500, connect_error_rate: 0.05}\n"
         "load:\n  user: churn\n  messages_per_connection: 3\n  connect_rate: 400\n"
         "  steps: [50]\n")


def _errors(text: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(text, "t.yaml")
    assert info.value.exit_code == 2
    return info.value.errors


def test_churn_reaches_the_load_generator_as_an_arrival_rate():
    scenario = parse_scenario(CHURN, "c.yaml")
    load = scenario.load
    assert (load.user, load.messages_per_connection) == ("churn", 3)
    assert scenario.slo.connect_p99_ms == 500.0 and scenario.slo.connect_error_rate == 0.05
    assert user_classes(load) == ["ChurnUser"]
    opts = load_options(load)
    assert opts[opts.index("--arrival-rate") + 1] == "400"
    assert opts[opts.index("--messages-per-connection") + 1] == "3"
    again = parse_scenario(scenario_to_yaml(scenario), "again.yaml")
    assert again == scenario  # the run directory's scenario.yaml reads back the same


def test_an_echo_load_has_no_churn_options_and_no_connect_slo():
    scenario = parse_scenario("servers: [epoll]\nload: {steps: [10]}\n", "e.yaml")
    assert "--arrival-rate" not in load_options(scenario.load)
    assert scenario.slo.connect_p99_ms is None and scenario.slo.connect_error_rate is None
    assert "messages_per_connection" not in scenario_to_yaml(scenario)
    assert "connect_p99_ms" not in scenario_to_yaml(scenario)


@pytest.mark.parametrize(("load", "where", "fix"), [
    ("{user: churn, active_users: 5, steps: [10]}", "t.yaml:2:35: load.active_users",
     "remove active_users, or use 'user: idle'"),
    ("{user: churn, messages_per_connection: 0, steps: [10]}",
     "t.yaml:2:46: load.messages_per_connection", "at least 1"),
    ("{messages_per_connection: 2, steps: [10]}", "t.yaml:2:33: load.messages_per_connection",
     "set 'user: churn'"),
    ("{user: churn, steps: [10], arrivals: 5}", "t.yaml:2:34: load.arrivals", "unknown key"),
])
def test_bad_churn_input_names_the_field_and_the_fix(load, where, fix):
    (error,) = _errors(f"servers: [epoll]\nload: {load}\n")
    assert error.startswith(where) and fix in error


def test_a_connect_slo_must_be_above_zero():
    (error,) = _errors("servers: [epoll]\nslo: {connect_p99_ms: 0}\nload: {steps: [10]}\n")
    assert error.startswith("t.yaml:2:23: slo.connect_p99_ms") and "above 0" in error


def test_the_churn_scenario_loads():
    scenario = load_scenario("scenarios/churn.yaml")
    assert scenario.load.user == "churn"
    assert [s.name for s in scenario.servers] == [
        "threads", "forking", "threadpool", "select", "epoll", "epoll-2"]
