"""--set PATH=VALUE: any scenario key, through the same schema and messages."""

from __future__ import annotations

import pytest
from paths import ROOT

from lab import cli
from lab.errors import InputError
from lab.scenario.loader import load_scenario, parse_scenario, scenario_to_yaml

LAB = ROOT / "lab.yaml"


def test_overrides_change_the_scenario_and_its_resolved_dump():
    s = load_scenario(LAB, ["load.hold=2s", "load.steps=[100, 500]",
                            "servers[0].limits.nofile=4096", "slo.p99_ms=50", "load.hold=3s"])
    assert [(st.connections, st.hold_s) for st in s.load.steps] == [(100, 3.0), (500, 3.0)]
    assert s.servers[0].limits.nofile == 4096 and s.servers[0].limits.backlog == 4096
    assert s.servers[1].limits.nofile == "max" and s.slo.p99_ms == 50
    again = parse_scenario(scenario_to_yaml(s), "resolved.yaml")
    assert again.load == s.load and again.servers == s.servers


@pytest.mark.parametrize("override, message", [
    ("load.hold=2x", "--set load.hold=2x: load.hold: '2x' is not a duration"),
    ("load.stepz=[1]", "--set load.stepz=[1]: load.stepz: unknown key; did you mean 'steps'?"),
    ("load.steps=[5,3]", "load.steps[1]: 3 is not above the previous step (5)"),
    ("servers[7].model=epoll", "there is no item 7 there (the list has 3)"),
    ("nope", "write PATH=VALUE"),
    ("servers[0].model=epol", "'epol' is not a model; did you mean 'epoll'?"),
    ("name=&a [*a]", "--set name=&a [*a]: name: expected a string; got a list"),  # a cycle
])
def test_a_bad_override_names_the_set_and_the_fix(override, message):
    with pytest.raises(InputError) as err:
        load_scenario(LAB, [override])
    assert message in str(err.value)


def test_the_cli_takes_set_and_refuses_a_bad_one_with_2(capsys):
    assert cli.main([str(LAB), "--set", "load.pace=fast", "--backend", "local"]) == 2
    assert "--set load.pace=fast: load.pace: 'fast' is not a duration" in capsys.readouterr().err
