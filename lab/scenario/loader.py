"""Load a scenario file into a frozen :class:`lab.scenario.types.Scenario`, validated once.

The public entry of the scenario package. The YAML is composed into nodes
first (``yaml.compose``), so every error names the file, the line and
column, the field path and the fix; and validation goes on past a bad field,
so one :class:`~lab.scenario.errors.ScenarioError` (an ``InputError``, exit
code 2) lists every problem in the file, one per line, in file order::

    lab.yaml:7:12: servers[2].model: 'epol' is not a model; did you mean 'epoll'?
    lab.yaml:10:9: load.pace: '-1s' is not a duration; write e.g. 10s, 500ms or 2m

Nothing downstream ever sees a raw dict: the run loop, the backends and the
report read only the typed values in ``lab/scenario/types.py``. The format is
documented in ``scenarios/README.md`` and declared, one line per key, in
``lab/scenario/schema.py``; :func:`scenario_to_dict` is its inverse (the
resolved ``scenario.yaml`` a run directory keeps loads back to the same value).

Modules: ``nodes`` (YAML nodes, positions, scalar parsers), ``fields`` (the
table machinery), ``schema`` (the tables), ``build`` (rules across fields),
``dump`` (the resolved dump), ``errors`` (problems and the one error).
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import yaml

from lab.errors import InputError
from lab.scenario.build import build_scenario
from lab.scenario.dump import scenario_to_dict, scenario_to_yaml
from lab.scenario.errors import Invalid, ScenarioError
from lab.scenario.nodes import NAME_RE, Doc, did_you_mean, is_null
from lab.scenario.overrides import apply as apply_overrides
from lab.scenario.schema import expectations
from lab.scenario.types import Scenario

__all__ = ["ScenarioError", "did_you_mean", "load_scenario", "parse_scenario",
           "scenario_to_dict", "scenario_to_yaml", "select_servers"]


def _default_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem).strip("-.") or "scenario"
    return name if NAME_RE.match(name) else "scenario"


def parse_scenario(text: str, filename: str = "<scenario>", source: Path | None = None, *,
                   from_run: bool = False, overrides: list[str] | tuple[str, ...] = ()
                   ) -> Scenario:
    """Parse and validate scenario YAML text; raises :class:`ScenarioError`
    (an :class:`InputError`) listing every problem.

    ``from_run``: ``text`` is a run directory's resolved scenario. Run
    directories written before keys were checked per model dumped
    ``on_fd_limit`` for every server; with ``from_run`` a key that does not
    apply to a server's model is dropped instead of refused.
    ``overrides``: ``PATH=VALUE`` strings (``--set``), see lab/scenario/overrides.py.
    """
    loader = yaml.SafeLoader(text)
    doc = Doc(filename, loader, from_run=from_run)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ScenarioError([f"{filename}:{line}:{column}: not valid YAML: {problem}"]) from None
    finally:
        loader.dispose()
    aside: list[tuple[yaml.Node, yaml.Node]] = []  # expectations of servers --set removed
    if overrides and root is not None and not is_null(root):
        root = apply_overrides(root, overrides, aside)
    if root is None or is_null(root):
        raise ScenarioError([f"{filename}:1:1: the file is empty; a scenario needs at least "
                             "'servers' and 'load' (see scenarios/README.md)"])
    try:
        scenario = build_scenario(doc, root, _default_name(Path(filename)))
    except Invalid as exc:  # the file is not a mapping
        doc.record(exc)
    not_checked: tuple = ()
    if aside:
        try:
            not_checked = expectations(doc, yaml.MappingNode("tag:yaml.org,2002:map", aside),
                                       "expect")
        except Invalid as exc:
            doc.record(exc)
    if doc.problems:
        raise ScenarioError(doc.messages())
    return dataclasses.replace(scenario, source_path=source, expect_not_checked=not_checked)


def load_scenario(path: str | Path, overrides: list[str] | tuple[str, ...] = ()) -> Scenario:
    """Read and validate a scenario file; every problem is an :class:`InputError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the scenario: {exc}") from None
    return parse_scenario(text, str(path), source=path.resolve(), overrides=overrides)


def select_servers(scenario: Scenario, names: list[str]) -> Scenario:
    """The scenario restricted to the named servers (``--models a,b``), in their
    order; the expectations of the others are set aside (``expect_not_checked``)."""
    by_name = {s.name: s for s in scenario.servers}
    chosen = []
    for name in names:
        if name not in by_name:
            hint = did_you_mean(name, tuple(by_name)) or f"; it has: {', '.join(by_name)}"
            raise InputError(f"--models: '{name}' is not a server of scenario "
                             f"'{scenario.name}'{hint}")
        chosen.append(by_name[name])
    if not chosen:
        raise InputError("--models: give at least one server name")
    run = {s.name for s in chosen}
    # an expectation compares with another server (slower_than): both must run
    kept = tuple(e for e in scenario.expect if {e.server, e.slower_than or e.server} <= run)
    aside = tuple(e for e in scenario.expect if e not in kept)
    return dataclasses.replace(scenario, servers=tuple(chosen), expect=kept,
                               expect_not_checked=scenario.expect_not_checked + aside)
