"""``expect:`` figures of a step or a user group (``p99_ms_below``,
``error_rate_at_most``, ``slower_than`` with ``times``, ``at``, ``group``):
parsed, written back, and refused with the field and the fix."""

from __future__ import annotations

import pytest

from lab.scenario.errors import ScenarioError
from lab.scenario.loader import load_scenario, parse_scenario, scenario_to_yaml, select_servers

BASE = ("servers: [threads, epoll]\n"
        "load:\n  steps: [10, 40]\n  groups: [{name: fast, weight: 2}, {name: slow}]\n")


def _errors(expect: str) -> list[str]:
    with pytest.raises(ScenarioError) as info:
        parse_scenario(BASE + expect, "t.yaml")
    assert info.value.exit_code == 2
    return info.value.errors


def test_several_expectations_of_one_server_round_trip():
    scenario = parse_scenario(BASE + (
        "expect:\n  epoll:\n    - {at: 40, slower_than: threads, times: 3}\n"
        "    - {at: 10, group: fast, p99_ms_below: 50, error_rate_at_most: 0}\n"
        "  threads: {holds: 40}\n"), "t.yaml")
    first, second, third = scenario.expect
    assert (first.server, first.at, first.slower_than, first.times) == ("epoll", 40, "threads", 3)
    assert (second.group, second.p99_ms_below, second.error_rate_at_most) == ("fast", 50, 0)
    assert (third.server, third.holds) == ("threads", 40)
    assert parse_scenario(scenario_to_yaml(scenario), "again.yaml") == scenario


@pytest.mark.parametrize(("expect", "where", "fix"), [
    ("{epoll: {slower_than: thread}}", "t.yaml:5:17: expect.epoll",
     "'thread' is not a server; did you mean 'threads'?"),
    ("{epoll: {group: fsat, p99_ms_below: 5}}", "t.yaml:5:17: expect.epoll",
     "'fsat' is not a load group; did you mean 'fast'?"),
    ("{epoll: {times: 3, p99_ms_below: 5}}", "t.yaml:5:17: expect.epoll",
     "times: only applies with slower_than: SERVER"),
    ("{epoll: {at: 40}}", "t.yaml:5:17: expect.epoll", "expects nothing; give one of limit"),
    ("{epoll: [{p99_ms_below: 0}]}", "t.yaml:5:33: expect.epoll[0].p99_ms_below", "above 0"),
    ("{epoll: {error_rate_at_most: 2}}", "t.yaml:5:38: expect.epoll.error_rate_at_most", "1"),
])
def test_bad_figures_name_the_field_and_the_fix(expect, where, fix):
    (error,) = _errors(f"expect: {expect}\n")
    assert error.startswith(where) and fix in error, error


COMPARED = BASE + ("expect:\n  epoll:\n    - {slower_than: threads, times: 3}\n"
                   "    - {p99_ms_below: 50}\n")


def test_a_comparison_with_a_server_left_out_is_not_checked(tmp_path):
    """``--models epoll`` or ``--set servers=[epoll]``: epoll's comparison with
    threads is set aside like the expectations of threads would be."""
    narrowed = select_servers(parse_scenario(COMPARED, "t.yaml"), ["epoll"])
    assert [e.p99_ms_below for e in narrowed.expect] == [50]
    assert [e.slower_than for e in narrowed.expect_not_checked] == ["threads"]
    path = tmp_path / "t.yaml"
    path.write_text(COMPARED)
    overridden = load_scenario(path, overrides=["servers=[epoll]"])
    assert [e.p99_ms_below for e in overridden.expect] == [50]
    assert [e.slower_than for e in overridden.expect_not_checked] == ["threads"]
    assert "slower_than: threads" in scenario_to_yaml(overridden).splitlines()[0]
