"""``load.network``: parsing, bad values (exit 2 with the field and the fix),
the dump, and the Locust options that put each shaped group in its class."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lab.backends.locust_cmd import load_options
from lab.cli.run_cmd import refuse_what_the_network_needs
from lab.errors import InputError
from lab.host.tc import netem_missing, netem_refusals, priority_of
from lab.scenario.loader import parse_scenario, scenario_to_yaml
from lab.scenario.types import NetworkSpec
from loadgen.groups import parse_groups
from tests.scenariokit import assert_load_line_refused

SHAPED = """\
servers: [epoll]
load:
  steps: [10]
  network: {rate: 1mbit}
  groups:
    - {name: slow, network: {delay: 50ms, loss: 1%, rate: 500kbit}}
    - {name: plain}
"""


def test_network_parses_at_load_and_group_level():
    load = parse_scenario(SHAPED, "n.yaml").load
    assert load.network == NetworkSpec(rate_bps=1_000_000)
    assert load.groups[0].network == NetworkSpec(delay_s=0.05, loss_pct=1.0, rate_bps=500_000)
    assert load.groups[1].network is None  # it takes the load's


@pytest.mark.parametrize("text, bps", [("1mbit", 1_000_000), ("500kbit", 500_000),
                                       ("2.5Mbit", 2_500_000), ("1mbps", 8_000_000),
                                       ("64kbps", 512_000), ("1gbit", 10**9)])
def test_rates_are_tcs_units(text, bps):
    load = parse_scenario(f"servers: [epoll]\nload:\n  steps: [1]\n  network: {{rate: {text}}}\n")
    assert load.load.network.rate_bps == bps


def test_the_dump_reads_back_equal():
    scenario = parse_scenario(SHAPED, "n.yaml")
    text = scenario_to_yaml(scenario)
    assert "rate: 500kbit" in text and "delay: 50ms" in text and "loss: 1%" in text
    assert parse_scenario(text, "n.yaml") == scenario


@pytest.mark.parametrize("line, message", [
    ("network: {rate: -1mbit}", "load.network.rate: -1mbit is not above zero"),
    ("network: {rate: 0kbit}", "load.network.rate: 0kbit is not above zero"),
    ("network: {rate: 1furlong}", "load.network.rate: 'furlong' is not a rate unit; write e.g."),
    ("network: {rate: 1000}", "load.network.rate: 1000 is not a rate with a unit"),
    ("network: {rate: 1bit}", "outside 8kbit .. 100gbit"),
    ("network: {loss: 150%}", "load.network.loss: 150% is not in (0%, 100%]"),
    ("network: {loss: 0%}", "load.network.loss: 0% is not in (0%, 100%]"),
    ("network: {loss: 0.01}", "load.network.loss: 0.01 is not a percentage; write e.g. 1%"),
    ("network: {delay: -5ms}", "load.network.delay: '-5ms' is not a duration"),
    ("network: {delay: 1h}", "load.network.delay: 1h is above 10s"),
    ("network: {}", "load.network: shapes nothing; give at least one of"),
    ("network: {jitter: 5ms}", "load.network.jitter: unknown key"),
    ("groups: [{name: a, network: {rate: 1xbit}}]",
     "load.groups[0].network.rate: 'xbit' is not a rate unit"),
])
def test_bad_network_values_exit_2_naming_the_field_and_the_fix(line, message):
    assert_load_line_refused(line, message)


def test_delay_and_loss_without_netem_are_refused_naming_the_file_and_field():
    scenario = parse_scenario(SHAPED, "n.yaml", source=Path("/s/n.yaml"))
    refusals = netem_refusals(scenario, "this kernel has no netem qdisc (sch_netem)")
    assert refusals == [
        "/s/n.yaml: load.groups[0].network.delay: needs netem, and this kernel has no netem "
        "qdisc (sch_netem); remove delay and loss (rate works without it: htb), or run on a "
        "kernel with netem",
        "/s/n.yaml: load.groups[0].network.loss: needs netem, and this kernel has no netem "
        "qdisc (sch_netem); remove delay and loss (rate works without it: htb), or run on a "
        "kernel with netem"]
    assert netem_refusals(scenario, None) == []  # a kernel with netem


def test_run_refuses_delay_before_anything_starts_where_netem_is_missing(monkeypatch):
    import lab.host.tc as tc

    scenario = parse_scenario(SHAPED, "n.yaml", source=Path("/s/n.yaml"))
    monkeypatch.setattr(tc, "netem_missing", lambda: "this kernel has no netem qdisc")
    with pytest.raises(InputError) as info:
        refuse_what_the_network_needs(scenario, "docker")
    assert info.value.exit_code == 2
    assert "nothing was started" in str(info.value)
    assert "load.groups[0].network.delay: needs netem" in str(info.value)
    rate_only = parse_scenario("servers: [epoll]\nload:\n  steps: [1]\n  network: {rate: 1mbit}\n")
    refuse_what_the_network_needs(rate_only, "docker")  # rate needs no netem


def test_each_shaped_group_gets_its_class_priority_and_an_unshaped_load_none():
    load = parse_scenario(SHAPED, "n.yaml").load
    opts = load_options(load)
    groups = json.loads(opts[opts.index("--groups") + 1])
    assert [g.get("so_priority") for g in groups] == [0x1AB00001, 0x1AB00002]
    assert parse_groups(json.dumps(groups))  # the loadgen takes the key
    whole = parse_scenario("servers: [epoll]\nload:\n  steps: [1]\n  network: {rate: 1mbit}\n")
    opts = load_options(whole.load)
    assert opts[opts.index("--so-priority") + 1] == str(0x1AB00001)
    plain = parse_scenario("servers: [epoll]\nload:\n  steps: [1]\n").load
    assert "--so-priority" not in load_options(plain) and priority_of(plain) == 0


def test_a_shaped_docker_worker_runs_tc_first_as_root_with_net_admin_only():
    from lab.backends.docker.specs import worker_options

    load = parse_scenario(SHAPED, "n.yaml").load
    opts = worker_options(load, ["python", "-m", "locust", "--worker"])
    assert opts["user"] == "0" and opts["cap_add"] == ["NET_ADMIN"]
    sh, flag, script, zero, *command = opts["command"]
    assert (sh, flag, zero, command) == ("sh", "-c", "sh", ["python", "-m", "locust", "--worker"])
    assert "tc qdisc add dev eth0 root handle 1ab0: htb" in script
    assert "command -v tc" in script and script.endswith('exec "$@"')
    plain = parse_scenario("servers: [epoll]\nload:\n  steps: [1]\n").load
    assert worker_options(plain, ["locust"]) == {"command": ["locust"]}  # unchanged, unprivileged


@pytest.mark.skipif(netem_missing() is None,
                    reason="this kernel has netem: delay is applied, not refused")
def test_run_lab_exits_2_on_delay_here_and_starts_nothing(tmp_path, capsys):
    from lab import cli

    scenario = tmp_path / "delay.yaml"
    scenario.write_text("backend: local\nservers: [epoll]\nload:\n  steps: [1]\n"
                        "  network: {delay: 50ms, rate: 1mbit}\n")
    out = tmp_path / "out"
    assert cli.main([str(scenario), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{scenario}: load.network.delay: needs netem, and this kernel has no netem" in err
    assert "nothing was started" in err
    assert not out.exists() or not any(out.iterdir())
