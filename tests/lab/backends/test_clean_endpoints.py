"""``run-lab clean`` finds the Docker hosts of recent runs, however they ended."""

from __future__ import annotations

import json

from lab.cli.clean_cmd import recent_endpoints
from lab.results.writer import RunRecord, create_run_dir
from lab.scenario.loader import scenario_to_yaml
from lab.scenario.types import HostSpec, LoadSpec, Placement, Scenario, ServerSpec, Step


def multi_host(name: str, endpoint: str) -> Scenario:
    return Scenario(name=name, servers=(ServerSpec(name="epoll", model="epoll", host="srv"),),
                    load=LoadSpec(steps=(Step(10, 1.0),)),
                    hosts=(HostSpec(name="srv", endpoint="local", address="198.18.250.1"),
                           HostSpec(name="gen", endpoint=endpoint, address="198.18.250.11")),
                    placement=Placement(master="gen", workers=("gen",)))


def test_a_run_killed_before_its_first_step_is_found(tmp_path):
    """run.json as RunRecord writes it before the backend does anything
    (status starting, no hosts facts yet): a SIGKILL then leaves only that."""
    run_dir = create_run_dir(tmp_path, "early")
    RunRecord(run_dir, multi_host("early", "tcp://198.18.250.11:2375"), "docker")
    assert json.loads((run_dir / "run.json").read_text())["status"] == "starting"
    assert recent_endpoints(tmp_path) == {"local", "tcp://198.18.250.11:2375"}


def test_a_ui_run_is_found_by_its_scenario_file_and_junk_is_ignored(tmp_path):
    ui = tmp_path / "20261202-000000-x-ui"
    (ui / "logs").mkdir(parents=True)
    (ui / "scenario.yaml").write_text(scenario_to_yaml(multi_host("x", "ssh://lab@198.18.1.2")))
    broken = tmp_path / "20261202-000001-broken"
    broken.mkdir()
    (broken / "run.json").write_text("{not json")
    (tmp_path / "stray-file").write_text("")
    assert recent_endpoints(tmp_path) == {"local", "ssh://lab@198.18.1.2"}
    assert recent_endpoints(tmp_path / "missing") == set()
