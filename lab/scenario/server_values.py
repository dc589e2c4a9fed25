"""Parsers for the values of a server's own keys: its open-file limit, its
namespaced sysctls and a custom server's command line."""

from __future__ import annotations

import shlex

import yaml

from contract.network import NAMESPACED_SYSCTL_PREFIXES, is_namespaced_sysctl
from lab.scenario.errors import Invalid
from lab.scenario.nodes import Doc, items, kind, number, scalar, spelled, string


def nofile(doc: Doc, node: yaml.Node, path: str) -> int | str:
    value = scalar(doc, node, path, "'max' or an integer")
    if value == "max":
        return "max"
    if isinstance(value, str):
        doc.fail(node, path, f"{value!r} is not 'max' or a number of open files")
    return number(doc, node, path, integer=True, minimum=32)


def sysctls(doc: Doc, node: yaml.Node, path: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(node, yaml.MappingNode):
        doc.fail(node, path, f"expected a mapping of sysctl: value; got {kind(doc, node)}")
    mark, out = doc.mark(), []
    for key_node, value_node in node.value:
        try:
            key = string(doc, key_node, path)
            if not is_namespaced_sysctl(key):
                prefixes = ", ".join(p + "*" for p in NAMESPACED_SYSCTL_PREFIXES)
                doc.fail(key_node, f"{path}.{spelled(key)}",
                         f"is not a namespaced sysctl (a container can set only {prefixes}); "
                         "host-wide limits go under host_limits")
            out.append((key, string(doc, value_node, f"{path}.{spelled(key)}")))
        except Invalid as exc:
            doc.record(exc)
    doc.settle(mark)
    return tuple(sorted(out))


def command(doc: Doc, node: yaml.Node, path: str) -> tuple[str, ...]:
    if isinstance(node, yaml.SequenceNode):
        words = tuple(string(doc, n, f"{path}[{i}]") for i, n in enumerate(items(doc, node, path)))
    else:
        try:
            words = tuple(shlex.split(string(doc, node, path)))
        except ValueError as exc:  # an unclosed quote
            doc.fail(node, path, f"cannot split it into words: {exc}")
    if not words:
        doc.fail(node, path, "is empty; give the program and its arguments")
    return words
