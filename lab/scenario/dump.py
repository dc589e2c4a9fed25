"""The resolved scenario as plain data: what a run directory keeps.

``scenario.yaml`` and run.json's ``scenario`` are this dump: every default
filled in, each key under its YAML name and in its YAML form (``pace: 1s``,
``workers: auto``). It is written by the same tables that read the format
(``lab/scenario/schema.py``), so :func:`lab.scenario.loader.parse_scenario` of
it gives back an equal :class:`~lab.scenario.types.Scenario`. A key that
applies to some models only (``workers``, ``on_fd_limit``) is written for
those models' servers only.

Expectations an override set aside (``expect_not_checked``: servers that
``--models`` or ``--set`` left out) are not part of the scenario, so the dump
validates; run.json keeps them under its own key (:func:`not_checked_to_list`)
and ``scenario.yaml`` names them in a comment.
"""

from __future__ import annotations

from typing import Any

import yaml

from lab.scenario.schema import EXPECT, TOP, expect_dump
from lab.scenario.types import Scenario


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """The resolved scenario (every default filled in) as YAML-ready plain data;
    :func:`~lab.scenario.loader.parse_scenario` of its YAML gives back an equal
    :class:`Scenario` (``source_path`` aside: it is where a file was, not what it says)."""
    return TOP.dump(scenario)


def not_checked_to_list(scenario: Scenario) -> list[dict[str, Any]]:
    """run.json's ``expect_not_checked``: ``[{"server": "select", "limit": "FD_SETSIZE"}]``."""
    return [{"server": e.server, **EXPECT.dump(e)} for e in scenario.expect_not_checked]


def scenario_to_yaml(scenario: Scenario) -> str:
    text = yaml.safe_dump(scenario_to_dict(scenario), sort_keys=False, default_flow_style=False)
    if not scenario.expect_not_checked:
        return text
    aside = yaml.safe_dump(expect_dump(scenario.expect_not_checked),
                           default_flow_style=True, width=10**6).strip()
    return f"# Not checked in this run (their servers were left out): {aside}\n" + text
