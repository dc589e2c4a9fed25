"""Shared pieces of the property-based tests (test_fuzz_scenarios.py, test_fuzz_rundirs.py).

Values are drawn from two pools: what the schema accepts, harvested from the
dumps of the project's own scenarios (the tables say which key each value
belongs to), and junk of every YAML type — wrong types, huge and
non-finite numbers, odd unicode — so a new key in ``lab/scenario/schema.py``
is fuzzed without touching these tests.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from typing import Any

import yaml
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from paths import ROOT

from lab import cli
from lab.scenario import schema
from lab.scenario.fields import Section
from lab.scenario.loader import load_scenario, scenario_to_dict

BASES = [ROOT / "lab.yaml", *sorted((ROOT / "scenarios").glob("*.yaml"))]

# derandomize: the same examples on every machine and every CI run; no example database.
FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])

# Where each table applies in a document ([] = any item of a list). The keys of each
# section come from the tables themselves.
SECTION_AT: dict[str, Section] = {
    "": schema.TOP, "load": schema.LOAD, "load.steps[]": schema.STEP,
    "servers[]": schema.SERVER, "servers[].limits": schema.LIMITS,
    "defaults": schema.DEFAULTS, "defaults.limits": schema.LIMITS,
    "slo": schema.SLO_TABLE, "hosts[]": schema.HOST, "placement": schema.PLACEMENT,
    "host_limits": schema.HOST_LIMITS, "expect.*": schema.EXPECT,
}


def section_at(path: str) -> Section | None:
    shape = re.sub(r"\[\d+\]", "[]", path)
    if shape.startswith("expect.") and shape.count(".") == 1:
        shape = "expect.*"
    return SECTION_AT.get(shape)


def _walk_data(value: Any, path: str, out: dict[tuple[str, str], list[Any]]) -> None:
    section = section_at(path)
    if isinstance(value, dict):
        for key, sub in value.items():
            if section is not None:
                out.setdefault((section.name, key), []).append(sub)
            _walk_data(sub, f"{path}.{key}" if path else str(key), out)
    elif isinstance(value, list):
        for i, sub in enumerate(value):
            _walk_data(sub, f"{path}[{i}]", out)


def harvest() -> dict[tuple[str, str], list[Any]]:
    """(section name, key) -> values the project's own scenarios resolve to."""
    out: dict[tuple[str, str], list[Any]] = {}
    for base in BASES:
        _walk_data(scenario_to_dict(load_scenario(base)), "", out)
    return out


VALID = harvest()

ODD_TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=12)
NAMED = st.sampled_from([
    "", "max", "auto", "none", "null", "~", "yes", "no", "on", "10s", "0s", "-1s", "1e999s",
    "1" * 400 + "s", "nan", ".nan", "inf", "-inf", "0x10", "1_000", "512m", "0-1", "9" * 30,
    "local", "unix:///x", "tcp://127.0.0.1:2375", "ssh://u@h", "épöll", "ep\u200boll",
    "\u202eepoll", "epoll\x00", "FD_SETSIZE", "select", "poll", "epoll", "threadpool",
    "1.5", "2m", "1h", "500ms", "net.core.somaxconn", "kernel.pid_max", "198.18.0.1",
    "8.8.8.8", "localhost", "echo", "idle", "fixed", "crash", "refuse"])
NUMBERS = st.one_of(st.integers(min_value=-10**40, max_value=10**40),
                    st.sampled_from([10**400, -10**400, 2**63, 2**64, 0, 1, -1, 1024]),
                    st.floats(allow_nan=True, allow_infinity=True))
EXTREMES = st.sampled_from([math.inf, -math.inf, math.nan, 10**400, -10**400, 1e308, -0.0,
                            2**63 - 1, 1e-300])
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, EXTREMES, ODD_TEXT, NAMED)
JUNK = st.recursive(SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.one_of(ODD_TEXT, NAMED), inner, max_size=3)), max_leaves=6)


def value_for(section: Section, key: str) -> st.SearchStrategy[Any]:
    """A value for ``key`` of ``section``: one the schema accepts, or junk."""
    valid = VALID.get((section.name, key))
    if not valid:
        return JUNK
    return st.one_of(st.sampled_from(valid), EXTREMES, JUNK)


def node_of(value: Any) -> yaml.Node:
    """``value`` as a YAML node, as a file would give it."""
    return yaml.compose(yaml.safe_dump(value, allow_unicode=True), Loader=yaml.SafeLoader)


def flow(value: Any) -> str:
    """``value`` as one line of YAML (what a --set VALUE would say)."""
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=10**9)
    return text.removesuffix("\n...\n").strip()


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    """``lab.cli.main(argv)`` in this process: (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = cli.main(argv)
    return code, out.getvalue(), err.getvalue()


def assert_clean_refusal(code: int, err: str) -> None:
    """Exit 0 or 2, and no trace of an internal error."""
    assert code in (0, 2), (code, err)
    assert "internal error" not in err and "Traceback" not in err, err
