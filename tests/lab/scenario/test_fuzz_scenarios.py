"""Bad input at scale: scenario documents generated from the schema's own tables.

Each example starts from one of the project's scenarios and changes it the way
a user might: a key of a section's table set to a value that fits or to junk
(wrong types, huge and non-finite numbers, odd unicode), keys removed, unknown
keys (near misses of the table's keys, or anything), repeated keys, aliases
and merge keys, a server in the short form. ``run-lab validate`` must then
exit 0 or 2 and never with an internal error; every message must point into
the document (its line, and a field path that exists there, or the mapping a
missing key belongs to); and what it accepts must dump to a scenario that
validates and reads back equal. The same for ``--set PATH=VALUE``, and for the
scenario a run resolves after ``--models``/``--set`` narrowed it (issue 22,
point 5).
"""

from __future__ import annotations

import copy
import dataclasses
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from fuzz_support import (
    BASES,
    FUZZ,
    JUNK,
    NAMED,
    ODD_TEXT,
    assert_clean_refusal,
    flow,
    node_of,
    run_cli,
    section_at,
    value_for,
)
from hypothesis import given
from hypothesis import strategies as st

from lab.analysis.expect import check
from lab.cli.run_cmd import resolve_scenario
from lab.errors import InputError
from lab.results.reader import load_run
from lab.results.writer import RunRecord
from lab.scenario.loader import load_scenario, parse_scenario, scenario_to_yaml
from lab.scenario.nodes import spelled

MERGE_TAG = "tag:yaml.org,2002:merge"
MESSAGE = re.compile(r"^(?P<file>.+?):(?P<line>\d+):(?P<col>\d+): (?P<rest>.*)$")
PATHLESS = ("not valid YAML", "the file is empty", "expected a mapping with keys")


# -- generating documents -------------------------------------------------------------------------

def mappings(node: yaml.Node, path: str = "", seen=None):
    """Every mapping node with its field path (each node once: aliases share nodes)."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    if isinstance(node, yaml.MappingNode):
        yield node, path
        for k, v in node.value:
            if isinstance(k, yaml.ScalarNode) and k.tag != MERGE_TAG:
                yield from mappings(v, f"{path}.{k.value}" if path else k.value, seen)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield from mappings(item, f"{path}[{i}]", seen)


def descendants(node: yaml.Node, seen=None) -> set[int]:
    seen = set() if seen is None else seen
    if id(node) not in seen:
        seen.add(id(node))
        children = (node.value if isinstance(node, yaml.SequenceNode) else
                    [n for pair in node.value for n in pair]
                    if isinstance(node, yaml.MappingNode) else [])
        for child in children:
            descendants(child, seen)
    return seen


def typo(key: str) -> st.SearchStrategy[str]:
    """A near miss of a table key: a letter dropped, doubled or changed case."""
    return st.integers(0, max(len(key) - 1, 0)).flatmap(lambda i: st.sampled_from([
        key[:i] + key[i + 1:], key[:i] + key[i] * 2 + key[i + 1:], key.upper(),
        key.replace("_", "-"), key + "s"]))


def mutate(data, root: yaml.MappingNode) -> None:
    """One change to the document, drawn by ``data``."""
    places = list(mappings(root))
    node, path = data.draw(st.sampled_from(places), label="where")
    section = section_at(path)
    keys = section.keys if section else ("limit", "holds", "epoll")
    action = data.draw(st.sampled_from(
        ["set", "set", "set", "drop", "unknown", "twice", "alias", "merge", "short"]),
        label="action")
    present = [pair for pair in node.value if isinstance(pair[0], yaml.ScalarNode)]
    if action == "set":
        key = data.draw(st.sampled_from(keys), label="key")
        value = node_of(data.draw(value_for(section, key) if section else JUNK, label="value"))
        node.value = [p for p in node.value if getattr(p[0], "value", None) != key]
        node.value.append((node_of(key), value))
    elif action == "drop" and present:
        node.value.remove(data.draw(st.sampled_from(present), label="dropped"))
    elif action == "unknown":
        key = data.draw(st.one_of(st.sampled_from(keys).flatmap(typo), ODD_TEXT, NAMED,
                                  st.integers(), st.booleans(), st.none()), label="unknown key")
        node.value.append((node_of(key), node_of(data.draw(JUNK, label="its value"))))
    elif action == "twice" and present:
        key, _ = data.draw(st.sampled_from(present), label="repeated")
        node.value.append((node_of(key.value), node_of(data.draw(
            value_for(section, key.value) if section else JUNK, label="second value"))))
    elif action in ("alias", "merge") and present:
        inside = descendants(node)
        others = [n for n, _ in places if id(n) not in inside]
        if not others:
            return
        other = data.draw(st.sampled_from(others), label="aliased")
        if action == "alias":  # the same node twice: the dump writes &id001 and *id001
            i = node.value.index(data.draw(st.sampled_from(present), label="alias at"))
            node.value[i] = (node.value[i][0], other)
        else:
            node.value.append((yaml.ScalarNode(MERGE_TAG, "<<"), other))
    elif action == "short" and path == "":
        servers = next((v for k, v in present if k.value == "servers"), None)
        if isinstance(servers, yaml.SequenceNode) and servers.value:
            i = data.draw(st.integers(0, len(servers.value) - 1), label="short server")
            servers.value[i] = node_of(data.draw(value_for(section_at("servers[0]"), "model"),
                                                 label="short form"))


def document(data) -> str:
    base = data.draw(st.sampled_from(BASES), label="base")
    root = yaml.compose(base.read_text(), Loader=yaml.SafeLoader)
    for _ in range(data.draw(st.integers(1, 4), label="changes")):
        mutate(data, root)
    return yaml.serialize(root, allow_unicode=True)


# -- what every message must say ------------------------------------------------------------------

def resolves(node: yaml.Node, path: str) -> bool:
    """Whether ``path`` (``servers[2].limits.nofile``) leads somewhere in ``node``.
    Keys may hold dots, so every key that starts the path is tried; merge keys
    are followed; a short-form server (a scalar) has its ``model``."""
    if path == "":
        return True
    if isinstance(node, yaml.SequenceNode):
        m = re.match(r"\[(\d+)\]", path)
        return bool(m) and int(m.group(1)) < len(node.value) and resolves(
            node.value[int(m.group(1))], path[m.end():].removeprefix("."))
    if isinstance(node, yaml.MappingNode):
        for k, v in node.value:
            if getattr(k, "tag", None) == MERGE_TAG:
                if resolves(v, path):
                    return True
                continue
            key = spelled(str(getattr(k, "value", "")))  # as messages write keys
            rest = path[len(key):]
            if path.startswith(key) and (rest == "" or rest[0] in ".[") and resolves(
                    v, rest.removeprefix(".")):
                return True
        return False
    return path == "model"


def parent(path: str) -> str:
    return re.sub(r"(\.[^.\[\]]*|\[\d+\])$", "", path) if ("." in path or "[" in path) else ""


def assert_points_into(text: str, message: str) -> None:
    """``file:line:col: path: message`` with the position in the text and the
    path in the document (a key a message says is missing, or a name that
    defaults from another key: in a mapping that is there)."""
    m = MESSAGE.match(message)
    assert m, message
    assert 1 <= int(m.group("line")) <= text.count("\n") + 2, message
    rest = m.group("rest")
    if rest.startswith(PATHLESS):
        return
    root = yaml.compose(text, Loader=yaml.SafeLoader)
    implied = "is missing" in rest or "is already used" in rest
    candidates = [rest[:i] for i in range(len(rest)) if rest.startswith(": ", i)]
    assert any(resolves(root, c) or (implied and resolves(root, parent(c)))
               for c in candidates), f"no path of the document in: {message}"


# -- the properties ----------------------------------------------------------------------------

@FUZZ
@given(st.data())
def test_validate_refuses_or_accepts_any_document_cleanly(data):
    text = document(data)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "fuzzed.yaml"
        path.write_text(text, encoding="utf-8")
        code, out, err = run_cli(["validate", str(path)])
    assert_clean_refusal(code, err)
    if code == 2:
        for message in err.strip().splitlines():
            assert message.startswith(str(path)), message
            assert_points_into(text, message.replace(str(path), "f", 1))
        return
    scenario = parse_scenario(text, "fuzzed.yaml")
    again = parse_scenario(scenario_to_yaml(scenario), "resolved.yaml")
    assert again == scenario  # what it accepts, it writes back the same


PATHS = st.one_of(
    st.sampled_from(["load.hold", "load.steps", "load.pace", "load.workers", "load.user",
                     "servers", "servers[0]", "servers[0].limits.nofile", "servers[1].model",
                     "servers[0].processes", "servers[9].name", "slo.p99_ms", "slo",
                     "expect", "expect.select.limit", "hosts[0].endpoint", "name",
                     "defaults.limits.backlog", "placement.workers", "load.steps[0]",
                     "load..hold", "[0]", "servers[x]", "servers[-1]", ".load", "load.",
                     "name.inner", "load.steps[0].hold", "servers[0][0]"]),
    ODD_TEXT)
VALUES = st.one_of(JUNK.map(flow), NAMED, ODD_TEXT,
                   st.sampled_from(["[", "{a", ": :", "\t", "&a [*a]", "!!python/object x",
                                    "*nope", "[100, 50]", "{nofile: max}", "[epoll]"]))


@FUZZ
@given(base=st.sampled_from(BASES), sets=st.lists(st.tuples(PATHS, VALUES), min_size=1,
                                                   max_size=3))
def test_set_values_are_refused_or_applied_cleanly(base, sets):
    overrides = [f"{p}={v}" for p, v in sets]
    try:
        scenario = resolve_scenario(base, overrides)
    except InputError as exc:  # what lab.cli.main turns into exit 2
        for message in getattr(exc, "errors", [str(exc)]):  # one per problem
            assert message.startswith("--set ") or message.startswith(str(base)), message
            if message.startswith("--set "):
                assert any(message.startswith(f"--set {o}") for o in overrides), message
        return
    again = parse_scenario(scenario_to_yaml(scenario), "resolved.yaml")
    assert again == dataclasses.replace(scenario, source_path=None, expect_not_checked=())


# -- point 5: a narrowed run's own record reads back -------------------------------------------

NARROWABLE = [b for b in BASES if len(load_scenario(b).servers) > 1]
FITTING_SETS = st.sampled_from([[], ["load.hold=1s"], ["load.steps=[1000, 2000]"],
                                ["slo.p99_ms=50"], ["load.repeat=2", "load.pace=500ms"],
                                ["servers[0].limits.nofile=4096"]])


@FUZZ
@given(data=st.data(), base=st.sampled_from(NARROWABLE), sets=FITTING_SETS,
       via_set=st.booleans())
def test_a_narrowed_scenario_is_written_so_that_it_validates(data, base, sets, via_set):
    """Random subsets of a scenario's servers (``--models`` or ``--set
    servers=...``) and fitting ``--set`` overrides: the scenario.yaml and
    run.json a run writes validate, and the expectations of the servers left
    out are listed as not checked (without running any load)."""
    full = resolve_scenario(base, list(sets))
    names = [s.name for s in full.servers]
    chosen = data.draw(st.lists(st.sampled_from(names), min_size=1, unique=True), label="run")
    if via_set:
        by_name = {s.name: s for s in full.servers}
        servers = flow([copy.deepcopy(yaml.safe_load(scenario_to_yaml(dataclasses.replace(
            full, servers=(by_name[n],), expect=()))))["servers"][0] for n in chosen])
        try:
            scenario = resolve_scenario(base, [*sets, f"servers={servers}"])
        except InputError as exc:  # a placed host or the like the override cannot keep
            pytest.fail(f"narrowing {base.name} to {chosen} was refused: {exc}")
    else:
        scenario = resolve_scenario(base, list(sets), ",".join(chosen))
    # left out with its server, or with the server it compares with (slower_than)
    left_out = {e.server for e in full.expect
                if not {e.server, e.slower_than or e.server} <= set(chosen)}
    assert {e.server for e in scenario.expect_not_checked} == left_out
    with tempfile.TemporaryDirectory() as tmp:
        run_dir = Path(tmp)
        RunRecord(run_dir, scenario, "local")
        written = load_scenario(run_dir / "scenario.yaml")
        assert dataclasses.replace(written, source_path=None) == dataclasses.replace(
            scenario, source_path=None, expect_not_checked=())
        run = load_run(run_dir)  # reads run.json's copy through the same loader
        assert run.scenario == dataclasses.replace(written, source_path=None)
        aside = [v for v in check(run) if not v.checked]
        assert {v.server for v in aside} == left_out
        assert not any(v.failed for v in aside)
