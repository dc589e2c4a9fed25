"""C500K's mechanism, small (scenarios/c500k.yaml is the benchmark): a server
in as many SO_REUSEPORT processes as ``processes: auto`` sizes from the top
step and its open-file limit, several Locust workers each connecting from its
own 127.0.0.x addresses, idle users with a few active ones, and the doctor's
prediction of what the top step needs, which the run then holds."""

from __future__ import annotations

import json

import pytest
from faultkit import run_local

from lab.host import doctor
from lab.host.facts import local_host_facts
from lab.results.writer import read_steps_csv
from lab.scenario.loader import parse_scenario

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time

SCENARIO = """name: c500k-small
backend: local
servers:
  - {name: epoll-reuseport, model: epoll, processes: auto, limits: {nofile: 120}}
load:
  user: idle
  active_users: 20
  message_size: 64
  pace: 1s
  workers: 2
  connect_rate: 1000
  hold: 2s
  steps: [100, 300]
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_reuseport_processes_and_workers_hold_what_the_doctor_predicts(tmp_path):
    sc = parse_scenario(SCENARIO, "c500k-small.yaml")
    (spec,) = sc.servers
    facts = local_host_facts()
    # 300 x 1.1 / (120 - 6) -> 3 processes of 114, but the hash's spread wants 4:
    # 300 / 3 + 4 x 10 = 140 > 114; 75 + 4 x 8.7 = 110 (one alone stops at 114)
    assert doctor.sizes(spec, sc, facts, 300) == (4, 2)
    lines = doctor.scenario_lines(sc, facts, "local")
    assert any("epoll-reuseport" in x and "reaches the top step" in x for x in lines)
    run_dir = run_local(tmp_path, SCENARIO)
    rows = {int(r["step"]): r for r in read_steps_csv(run_dir / "steps.csv")}
    top = rows[1]
    assert top["limit"] == "" and int(top["connected"]) == int(top["server_connections"]) == 300
    assert int(top["workers_alive"]) == 2 and int(top["failures"]) == 0
    final = json.loads((run_dir / "run.json").read_text())["models"]["epoll-reuseport"]["final"]
    assert len(final["processes"]) == 4 and final["peak_connections"] == 300
