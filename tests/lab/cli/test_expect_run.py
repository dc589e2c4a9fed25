"""A run whose scenario says what it must show: exit 3 when an expectation is
not met, and ``--json`` prints the summary alone on stdout (a real local run:
select stepped across its 1024-descriptor wall)."""

from __future__ import annotations

import json

import pytest
import yaml

from lab import cli

pytestmark = pytest.mark.load  # runs Locust or a lab: one at a time


@pytest.mark.parametrize("expect, code", [({"select": {"limit": "FD_SETSIZE"}}, 0),
                                          ({"select": {"limit": "none"}}, 3)])
def test_run_exits_3_on_an_unmet_expectation_and_json_is_stdout_alone(tmp_path, capsys,
                                                                      expect, code):
    scenario = {"name": "exp", "backend": "local", "servers": ["select"],
                "load": {"connect_rate": 1000, "hold": "1s", "steps": [200, 1200]},
                "expect": expect}
    path = tmp_path / "exp.yaml"
    path.write_text(yaml.safe_dump(scenario))
    assert cli.main([str(path), "--out", str(tmp_path / "out"), "--json"]) == code
    out, err = capsys.readouterr()
    data = json.loads(out)  # nothing but the summary on stdout
    assert data["exit_code"] == code and data["models"]["select"]["limit"] == "FD_SETSIZE"
    assert data["expectations_met"] is (code == 0)
    assert "run: " in err and "select stopped at" in err
