"""``--set PATH=VALUE``: change any key of a scenario from the command line.

Locust users change the load with ``-u``/``-t``; here any scenario path can be
set (``--set load.hold=2s --set load.steps=[100,500] --set servers[0].limits.nofile=4096``).
The override is applied to the composed YAML *nodes* before the scenario is
built, so the value goes through the same schema, with the same messages, as
if it had been written in the file; a problem in it is reported against the
``--set`` that gave it. The resolved ``scenario.yaml`` of the run records the
result. VALUE is YAML (``[100, 500]``, ``{nofile: max}``, ``2s``).

An override that narrows the servers (``--set servers=[poll,epoll]``, or a
rename) leaves the file's expectations of the servers it removed without a
server. They are not errors: :func:`apply` sets them aside (``aside``), the
loader parses them as :attr:`Scenario.expect_not_checked`, and the run lists
them as not checked (run.json ``expect_not_checked``). The resolved scenario
a run writes then holds only what it ran, and validates.
"""

from __future__ import annotations

import re

import yaml

from lab.errors import InputError

SET_MARK = "--set "
_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")


def _parts(path: str, override: str) -> list[str | int]:
    parts: list[str | int] = []
    pos = 0
    for m in _PART.finditer(path):
        if m.start() != pos and path[pos:m.start()] != ".":
            raise InputError(f"--set {override}: '{path}' is not a scenario path; write e.g. "
                             "load.hold or servers[0].limits.nofile")
        parts.append(m.group(1) if m.group(1) is not None else int(m.group(2)))
        pos = m.end()
    if not parts or pos != len(path):
        raise InputError(f"--set {override}: '{path}' is not a scenario path; write e.g. "
                         "load.hold or servers[0].limits.nofile")
    return parts


def _value_node(text: str, override: str) -> yaml.Node:
    try:
        node = yaml.compose(text or "~", Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"--set {override}: the value is not valid YAML: {problem}") from None
    for n in _walk(node):  # every problem in this value names the --set it came from
        n.start_mark.name = SET_MARK + override
    return node


def _walk(node: yaml.Node, seen: set[int] | None = None):
    """Every node once: an alias of an enclosing anchor (``&a [*a]``) makes the
    graph a cycle, which the loader then refuses like in a file."""
    seen = set() if seen is None else seen
    if id(node) in seen:
        return
    seen.add(id(node))
    yield node
    if isinstance(node, yaml.SequenceNode):
        for item in node.value:
            yield from _walk(item, seen)
    elif isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield from _walk(key, seen)
            yield from _walk(value, seen)


def _key(name: str, override: str) -> yaml.ScalarNode:
    node = yaml.ScalarNode("tag:yaml.org,2002:str", name)
    node.start_mark = yaml.Mark(SET_MARK + override, 0, 0, 0, None, None)
    return node


def _spelled(parts: list[str | int]) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else (f".{p}" if i else p)
                   for i, p in enumerate(parts))


def _long_form_servers(root: yaml.Node) -> None:
    """``servers: [epoll]`` is short for ``servers: [{model: epoll}]``; a --set
    into ``servers[0]`` needs the long form to have somewhere to go."""
    if not isinstance(root, yaml.MappingNode):
        return
    for key, value in root.value:
        if getattr(key, "value", None) == "servers" and isinstance(value, yaml.SequenceNode):
            for i, item in enumerate(value.value):
                if isinstance(item, yaml.ScalarNode):
                    model = yaml.ScalarNode("tag:yaml.org,2002:str", "model", item.start_mark,
                                            item.end_mark)
                    value.value[i] = yaml.MappingNode("tag:yaml.org,2002:map", [(model, item)],
                                                      item.start_mark, item.end_mark)


def _entry(node: yaml.Node, key: str) -> yaml.Node | None:
    if isinstance(node, yaml.MappingNode):
        return next((v for k, v in node.value if getattr(k, "value", None) == key), None)
    return None


def server_names(root: yaml.Node) -> set[str]:
    """The server names a document's nodes give: ``name``, else ``model`` (the
    default name), else the short form's scalar. Only to tell which servers
    an override removed; the loader decides what is valid."""
    servers, names = _entry(root, "servers"), set()
    for item in servers.value if isinstance(servers, yaml.SequenceNode) else ():
        if isinstance(item, yaml.MappingNode):
            item = _entry(item, "name") or _entry(item, "model")
        if isinstance(item, yaml.ScalarNode) and isinstance(item.value, str):
            names.add(item.value)
    return names


def _set_aside(root: yaml.Node, removed: set[str], aside: list) -> None:
    """Move the expectations of ``removed`` servers out of ``expect`` into ``aside``."""
    expect = _entry(root, "expect")
    if not removed or not isinstance(expect, yaml.MappingNode):
        return
    for pair in list(expect.value):
        if getattr(pair[0], "value", None) in removed:
            expect.value.remove(pair)
            aside.append(pair)
        elif isinstance(pair[1], (yaml.MappingNode, yaml.SequenceNode)):
            # one that compares with a removed server (slower_than) goes aside too
            many = pair[1].value if isinstance(pair[1], yaml.SequenceNode) else [pair[1]]
            gone = [m for m in many if getattr(_entry(m, "slower_than"), "value", None)
                    in removed]
            if gone:
                aside.append((pair[0], yaml.SequenceNode("tag:yaml.org,2002:seq", gone)))
                if len(gone) == len(many):
                    expect.value.remove(pair)
                else:
                    pair[1].value[:] = [m for m in many if m not in gone]


def apply(root: yaml.Node, overrides: list[str] | tuple[str, ...],
          aside: list[tuple[yaml.Node, yaml.Node]] | None = None) -> yaml.Node:
    """``root`` with every ``PATH=VALUE`` applied, in order (a later one wins).
    Expectations of servers the file had and the overrides removed are moved
    into ``aside`` (key node, value node) when it is given."""
    _long_form_servers(root)
    before = server_names(root)
    for override in overrides:
        path, sep, text = override.partition("=")
        if not sep or not path.strip():
            raise InputError(f"--set {override}: write PATH=VALUE, e.g. --set load.hold=2s")
        parts = _parts(path.strip(), override)
        value = _value_node(text.strip(), override)
        node = root
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            where = _spelled(parts[:i]) or "the scenario"
            if isinstance(part, int):
                if not isinstance(node, yaml.SequenceNode) or part >= len(node.value):
                    size = len(node.value) if isinstance(node, yaml.SequenceNode) else 0
                    raise InputError(f"--set {override}: there is no item {part} there "
                                     f"(the list has {size}); set the whole list instead")
                if last:
                    node.value[part] = value
                else:
                    node = node.value[part]
                continue
            if not isinstance(node, yaml.MappingNode):
                raise InputError(f"--set {override}: {where} is inside a value that is not a "
                                 "mapping; set the whole value instead")
            match = next((pair for pair in node.value if getattr(pair[0], "value", None) == part),
                         None)
            if last:
                if match:
                    node.value[node.value.index(match)] = (match[0], value)
                else:
                    node.value.append((_key(part, override), value))
            elif match:
                node = match[1]
            else:
                child = yaml.MappingNode("tag:yaml.org,2002:map", [])
                child.start_mark = yaml.Mark(SET_MARK + override, 0, 0, 0, None, None)
                node.value.append((_key(part, override), child))
                node = child
    if aside is not None:
        _set_aside(root, before - server_names(root), aside)
    return root
