"""The code around the tables: rules that relate fields, and the whole scenario.

``lab/scenario/schema.py`` declares every key; this module adds what one key
cannot say by itself: the servers' short form (``- epoll``), ``defaults:``
inherited by every server, keys that apply to some models only, custom
servers, steps that inherit ``load.hold`` and must increase, and host names
that must exist.

Every problem is recorded on the :class:`~lab.scenario.nodes.Doc` and parsing
goes on with the default, so a check that needs another field skips when
that field failed (it would only repeat the same mistake in other words).
"""

from __future__ import annotations

import re
from typing import Any

import yaml

from contract.defaults import USER_CHURN, USER_IDLE
from lab.scenario.errors import Invalid
from lab.scenario.nodes import Doc, Map, did_you_mean, int_at_least, items, spelled
from lab.scenario.schema import (
    BUILT_IN,
    CUSTOM_KEYS,
    DEFAULTS,
    HOST,
    LIMITS,
    LOAD,
    PLACEMENT,
    SERVER,
    STEP,
    TOP,
    address,
    groups,
    named_items,
)
from lab.scenario.types import HostSpec, LoadSpec, Placement, Scenario, ServerSpec, Step

DEFAULT_HOSTS: tuple[HostSpec, ...] = TOP.default("hosts")


def _mapping(node: yaml.Node) -> yaml.Node:
    """The short form ``- epoll`` as ``- model: epoll``."""
    if not isinstance(node, yaml.ScalarNode):
        return node
    key = yaml.ScalarNode("tag:yaml.org,2002:str", "model", node.start_mark, node.end_mark)
    return yaml.MappingNode("tag:yaml.org,2002:map", [(key, node)], node.start_mark,
                            node.end_mark)


def _defaults(doc: Doc, node: yaml.Node, path: str) -> dict[str, Any]:
    """``defaults:``, parsed once: the server keys it gives (key -> value)."""
    return DEFAULTS.given(doc, DEFAULTS.open(doc, node, path))


def _model_rules(doc: Doc, m: Map, model: str | None) -> None:
    """A key for some models only (``workers``, ``on_fd_limit``) on another server."""
    for f in SERVER.fields:
        if f.models is None or f.key not in m.fields or f.fits(model):
            continue
        if doc.from_run:
            continue  # older run directories dumped on_fd_limit for every server
        fix = (f"remove it from '{model}'" if model is not None else
               "a custom server takes its own options in 'command'; remove it")
        which = "the built-in models" if f.models == BUILT_IN else ", ".join(sorted(f.models))
        doc.report(m.key_nodes[f.key], m.sub(f.key),
                   f"only applies to {which} ({f.applies}); {fix}")


def _custom_rules(doc: Doc, m: Map, got: dict[str, Any]) -> None:
    """A built-in model takes no custom keys; a custom server needs its own."""
    model = got.get("model")
    if model is not None:
        for key in CUSTOM_KEYS:
            if key in m.fields:
                doc.report(m.fields[key], m.sub(key), f"a built-in model ('{model}') runs the "
                                                      f"lab's own server; remove '{key}' or "
                                                      "remove 'model'")
        return
    if "image" not in m.fields and "command" not in m.fields:
        doc.report(m.node, m.path, "needs 'model' (one of the built-in models) or, for a "
                                   "custom server, 'image' and/or 'command' plus 'port'")
        return  # that says what is missing
    for key, why in (("port", "the port the custom server listens on"),
                     ("name", "a custom server needs a name for its results rows")):
        if key not in got and key not in m.failed:
            doc.report(m.node, m.sub(key), f"is missing ({why})")


def _server(doc: Doc, node: yaml.Node, path: str, inherited: dict[str, Any],
            first_host: str) -> ServerSpec:
    m = SERVER.open(doc, _mapping(node), path)
    got = SERVER.given(doc, m)
    model = got.get("model")
    if "model" not in m.failed:  # else what applies is unknown: say nothing more
        _model_rules(doc, m, model)
        _custom_rules(doc, m, got)
    for f in SERVER.fields:
        if not f.fits(model):
            got.pop(f.key, None)  # already reported, or an older run directory's
        elif f.key in inherited and f.key != "limits":
            got.setdefault(f.key, inherited[f.key])
    limits = LIMITS.build({**inherited.get("limits", {}), **got.pop("limits", {})})
    return SERVER.build(got, name=model, host=first_host, limits=limits)


def _servers(doc: Doc, node: yaml.Node, path: str, inherited: dict[str, Any],
             first_host: str) -> tuple[ServerSpec, ...]:
    """Every server that could be built, even when others could not (their
    host references are still checked)."""
    servers: list[ServerSpec] = []
    seen: dict[str | None, int] = {}
    for i, item in enumerate(items(doc, node, path)):
        try:
            spec = _server(doc, item, f"{path}[{i}]", inherited, first_host)
        except Invalid as exc:
            doc.record(exc)
            continue
        if spec.name is not None and spec.name in seen:
            doc.report(item, f"{path}[{i}].name", f"'{spec.name}' is already used by "
                                                  f"{path}[{seen[spec.name]}]; give each a "
                                                  "distinct 'name'")
        seen.setdefault(spec.name, i)
        servers.append(spec)
    return tuple(servers)


def _step(doc: Doc, item: yaml.Node, path: str, hold: float) -> tuple[Step, yaml.Node, str]:
    """A step, and the node and path of its connections (for the order check)."""
    if not isinstance(item, yaml.MappingNode):
        return Step(int_at_least(1)(doc, item, path), hold), item, path
    m = STEP.open(doc, item, path)
    step = STEP.build(STEP.given(doc, m), hold_s=hold)
    if step is None:  # no valid connections: already reported
        raise Invalid(None)
    return step, m.fields["connections"], m.sub("connections")


def _steps(doc: Doc, node: yaml.Node, path: str, hold: float) -> tuple[Step, ...]:
    mark, steps = doc.mark(), []
    for i, item in enumerate(items(doc, node, path)):
        try:
            step, conn_node, conn_path = _step(doc, item, f"{path}[{i}]", hold)
        except Invalid as exc:
            doc.record(exc)
            continue
        if steps and step.connections <= steps[-1].connections:
            doc.report(conn_node, conn_path, f"{step.connections} is not above the previous "
                                             f"step ({steps[-1].connections}); steps must "
                                             "increase")
            continue
        steps.append(step)
    doc.settle(mark)
    return tuple(steps)


def _load(doc: Doc, node: yaml.Node, path: str) -> LoadSpec:
    m = LOAD.open(doc, node, path)
    got: dict[str, Any] = {}

    def steps(d: Doc, n: yaml.Node, p: str) -> tuple[Step, ...]:  # hold is parsed before
        return _steps(d, n, p, got.get("hold", LOAD.default("hold")))

    LOAD.given(doc, m, got, {"steps": steps, "groups": groups})
    active = got.get("active_users", 0)
    user = got.get("user", LOAD.default("user"))
    if active and "user" not in m.failed and user == USER_CHURN:
        doc.report(m.fields["active_users"], m.sub("active_users"),
                   "does not apply with 'user: churn' (every churn user echoes); remove "
                   "active_users, or use 'user: idle'")
    elif active and "user" not in m.failed and user != USER_IDLE:
        doc.report(m.fields["active_users"], m.sub("active_users"),
                   "only applies with 'user: idle' (active users among idle ones)")
    if ("messages_per_connection" in m.fields and "user" not in m.failed
            and user != USER_CHURN):
        doc.report(m.fields["messages_per_connection"], m.sub("messages_per_connection"),
                   "only applies with 'user: churn' (echoes per connection before it "
                   "closes); remove it, or set 'user: churn'")
    steps = got.get("steps")
    if active and steps and active > steps[0].connections:
        doc.report(m.fields["active_users"], m.sub("active_users"),
                   f"{active} is more than the first step's {steps[0].connections} connections")
    return LOAD.build(got)


def _hosts(doc: Doc, node: yaml.Node, path: str, allow_external: bool) -> tuple[HostSpec, ...]:
    parsers = {"address": address(allow_external)}

    def host(d: Doc, item: yaml.Node, p: str) -> HostSpec | None:
        return HOST.build(HOST.given(d, HOST.open(d, item, p), parsers=parsers))

    return named_items(doc, node, path, host, "host")


def _placement(doc: Doc, node: yaml.Node, path: str, first_host: str) -> Placement:
    got = PLACEMENT.given(doc, PLACEMENT.open(doc, node, path))
    return PLACEMENT.build(got, master=first_host, workers=(first_host,))


def _node_at(root: yaml.Node, path: str) -> yaml.Node:
    """The deepest node along ``a.b[2].c`` that exists (for an error's position)."""
    node = root
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", path):
        if part.startswith("[") and isinstance(node, yaml.SequenceNode):
            index = int(part[1:-1])
            if index >= len(node.value):
                break
            node = node.value[index]
        elif isinstance(node, yaml.MappingNode):
            match = [v for k, v in node.value if getattr(k, "value", None) == part]
            if not match:
                break
            node = match[0]
        else:
            break
    return node


def _check_host_refs(doc: Doc, root: yaml.Node, scenario: Scenario) -> None:
    names = tuple(h.name for h in scenario.hosts)
    # A server without its own host inherits defaults.host: the reference is there.
    refs = [(f"servers[{i}].host" if _node_at(root, f"servers[{i}].host")
             is not _node_at(root, f"servers[{i}]") else "defaults.host", s.host)
            for i, s in enumerate(scenario.servers)]
    refs.append(("placement.master", scenario.placement.master))
    refs += [(f"placement.workers[{i}]", w) for i, w in enumerate(scenario.placement.workers)]
    for path, host in refs:
        if host not in names:
            hint = did_you_mean(host, names) or f"; hosts are: {', '.join(names)}"
            doc.report(_node_at(root, path), path, f"'{host}' is not a host{hint}")


def _check_expect_refs(doc: Doc, root: yaml.Node, scenario: Scenario) -> None:
    names = tuple(s.name for s in scenario.servers if s and s.name)  # a bad one has none
    if not names:  # every server is broken: that is what to fix first
        return
    groups = tuple(g.name for g in scenario.load.groups)
    for e in scenario.expect:
        path = f"expect.{spelled(e.server)}"
        node = _node_at(root, path)
        for what, ref, known in (("server", e.server, names), ("server", e.slower_than, names),
                                 ("load group", e.group, groups)):
            if ref is not None and ref not in known:
                hint = did_you_mean(ref, known) or (
                    f"; {what}s are: {', '.join(known)}" if known else "; load.groups has none")
                doc.report(node, path, f"'{ref}' is not a {what}{hint}")
        if e.times is not None and e.slower_than is None:
            doc.report(node, path, "times: only applies with slower_than: SERVER; add it")


def build_scenario(doc: Doc, root: yaml.Node, default_name: str) -> Scenario:
    """The scenario at ``root``; its problems are on ``doc`` (the value is only
    meaningful when there are none)."""
    top = TOP.open(doc, root, "")
    got: dict[str, Any] = {}

    def first() -> str:  # the hosts are parsed before the keys that use this
        return got.get("hosts", DEFAULT_HOSTS)[0].name

    TOP.given(doc, top, got, {
        "hosts": lambda d, n, p: _hosts(d, n, p, got.get("allow_external_targets", False)),
        "placement": lambda d, n, p: _placement(d, n, p, first()),
        "defaults": _defaults,
        "servers": lambda d, n, p: _servers(d, n, p, got.get("defaults", {}), first()),
        "load": _load,
    })
    first_host = first()
    scenario = TOP.build(got, name=default_name, servers=(), load=LoadSpec(),
                         placement=Placement(master=first_host, workers=(first_host,)))
    if "hosts" not in top.failed:  # else a reference to a bad host would be reported too
        _check_host_refs(doc, root, scenario)
    if "servers" not in top.failed:
        _check_expect_refs(doc, root, scenario)
    return scenario
