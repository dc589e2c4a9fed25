"""YAML nodes with their positions, and the scalar parsers the schema is made of.

The scenario is composed into nodes (``yaml.compose``), not loaded into a
dict, so every value keeps its file position: an error names the file, the
line and column, the field path and the fix::

    lab.yaml:18:12: servers[2].model: 'epol' is not a model; did you mean 'epoll'?

A parser is ``(doc, node, path) -> value``. It raises :class:`Invalid` (via
:meth:`Doc.fail`) for a bad value; the section reading the field records the
problem and goes on, so one file's errors are all reported together.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Callable
from typing import Any, NoReturn

import yaml

from lab.scenario.errors import Invalid, Problem, in_file_order

Parser = Callable[["Doc", yaml.Node, str], Any]

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?(?:[eE][+-]?\d+)?)\s*(ms|s|m|h)?\s*$")
UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    """``"; did you mean 'epoll'?"`` when ``word`` is close to one of ``choices``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


def spelled(key: str) -> str:
    """A key as a message's field path writes it: as it is, or quoted (a JSON
    string, which YAML reads too) when it is empty or holds a character that
    would break or hide in the line (a newline, a zero-width space)."""
    return key if key and key.isprintable() else json.dumps(key)


class Doc:
    """The file being read: its name (for messages), the YAML constructor that
    turns scalar nodes into Python values, and the problems found so far.

    ``from_run``: the text is a run directory's resolved scenario; see
    :func:`lab.scenario.loader.parse_scenario`.
    """

    def __init__(self, filename: str, loader: yaml.SafeLoader, *, from_run: bool = False):
        self.filename = filename
        self.loader = loader
        self.from_run = from_run
        self.problems: list[Problem] = []

    def problem(self, node: yaml.Node | None, path: str, message: str) -> Problem:
        mark = node.start_mark if node is not None else None
        where = f"{path}: " if path else ""
        if mark is not None and str(mark.name).startswith("--set "):  # from the command line
            return Problem(1 << 30, 0, f"{mark.name}: {where}{message}")
        line, column = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        return Problem(line, column, f"{self.filename}:{line}:{column}: {where}{message}")

    def fail(self, node: yaml.Node | None, path: str, message: str) -> NoReturn:
        """This value is bad: the caller's field fails (and gets its default)."""
        raise Invalid(self.problem(node, path, message))

    def report(self, node: yaml.Node | None, path: str, message: str) -> None:
        """Record a problem and carry on (a rule across fields, an unknown key)."""
        self.problems.append(self.problem(node, path, message))

    def record(self, exc: Invalid) -> None:
        if exc.problem is not None:
            self.problems.append(exc.problem)

    def mark(self) -> int:
        return len(self.problems)

    def settle(self, mark: int) -> None:
        """Fail the current field (already reported) if problems were recorded since ``mark``."""
        if len(self.problems) > mark:
            raise Invalid(None)

    def messages(self) -> list[str]:
        return in_file_order(self.problems)

    def value(self, node: yaml.Node, path: str = "") -> Any:
        """The Python value of ``node`` (an unknown ``!!tag`` is a problem at ``path``)."""
        try:
            return self.loader.construct_object(node, deep=True)
        except yaml.YAMLError as exc:
            problem = getattr(exc, "problem", None) or exc
            self.fail(node, path, f"cannot read this value: {problem}")


class Map:
    """A YAML mapping node with its field path. Unknown keys (with a
    did-you-mean) and repeated keys are recorded and skipped; ``fields`` holds
    the value node of each allowed key, ``key_nodes`` its key node, and
    ``failed`` the keys whose value did not parse."""

    def __init__(self, doc: Doc, node: yaml.Node, path: str, keys: tuple[str, ...]):
        if not isinstance(node, yaml.MappingNode):
            doc.fail(node, path, f"expected a mapping with keys {', '.join(keys)}; "
                                 f"got {kind(doc, node)}")
        try:
            doc.loader.flatten_mapping(node)
        except yaml.YAMLError as exc:
            doc.fail(node, path, f"cannot merge into this mapping: "
                                 f"{getattr(exc, 'problem', None) or exc}")
        self.doc, self.node, self.path = doc, node, path
        self.fields: dict[str, yaml.Node] = {}
        self.key_nodes: dict[str, yaml.Node] = {}
        self.failed: set[str] = set()
        for key_node, value_node in node.value:
            try:
                key = doc.value(key_node, self.path)
            except Invalid as exc:
                doc.record(exc)
                continue
            if not isinstance(key, str) or key not in keys:
                hint = did_you_mean(str(key), keys) or "; allowed here: " + ", ".join(keys)
                # as the file spells it (``null``, ``1.0``), not as Python prints it
                text = key_node.value if isinstance(key_node, yaml.ScalarNode) else str(key)
                doc.report(key_node, self.sub(spelled(text)), f"unknown key{hint}")
            elif key in self.fields:
                doc.report(key_node, self.sub(key), "appears twice; keep only one")
            else:
                self.fields[key] = value_node
                self.key_nodes[key] = key_node

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key


# -- scalar parsers: (doc, node, path) -> value --------------------------------------------------

def kind(doc: Doc, node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    try:
        value = doc.value(node)
    except Invalid:
        return f"a value tagged {node.tag}"
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def scalar(doc: Doc, node: yaml.Node, path: str, what: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        doc.fail(node, path, f"expected {what}; got {kind(doc, node)}")
    return doc.value(node, path)


def string(doc: Doc, node: yaml.Node, path: str) -> str:
    value = scalar(doc, node, path, "a string")
    if isinstance(value, bool) or value is None:
        doc.fail(node, path, f"expected a string; got {kind(doc, node)}")
    return str(value)


def text(doc: Doc, node: yaml.Node, path: str) -> str:
    """A string without its surrounding blank space (``>`` blocks end in a newline)."""
    return string(doc, node, path).strip()


def boolean(doc: Doc, node: yaml.Node, path: str) -> bool:
    value = scalar(doc, node, path, "true or false")
    if not isinstance(value, bool):
        doc.fail(node, path, f"expected true or false; got {kind(doc, node)}")
    return value


def number(doc: Doc, node: yaml.Node, path: str, *, integer: bool, minimum: float,
           maximum: float | None = None, exclusive: bool = False) -> Any:
    what = "an integer" if integer else "a number"
    value = scalar(doc, node, path, what)
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        doc.fail(node, path, f"expected {what}; got {kind(doc, node)}")
    if not integer and not _finite(value):  # .inf, .nan, or an int past any float
        doc.fail(node, path, "is too large" if isinstance(value, int) else
                 f"{node.value} is not a finite number")
    if value < minimum or (exclusive and value == minimum):
        doc.fail(node, path, f"{value} is too small; use a number "
                             f"{'above' if exclusive else 'of at least'} {minimum:g}")
    if maximum is not None and value > maximum:
        doc.fail(node, path, f"{value} is too large; the most allowed is {maximum:g}")
    return value


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int too large for a float
        return False


def int_at_least(minimum: int, maximum: int | None = None) -> Parser:
    return lambda doc, node, path: number(doc, node, path, integer=True, minimum=minimum,
                                          maximum=maximum)


def positive(doc: Doc, node: yaml.Node, path: str) -> float:
    return float(number(doc, node, path, integer=False, minimum=0, exclusive=True))


def fraction(doc: Doc, node: yaml.Node, path: str) -> float:
    return float(number(doc, node, path, integer=False, minimum=0, maximum=1))


def duration(doc: Doc, node: yaml.Node, path: str) -> float:
    """``10s``, ``500ms``, ``2m``, ``1h`` or a bare number of seconds; above zero."""
    value = scalar(doc, node, path, "a duration")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value) if _finite(value) else math.inf
    else:
        match = DURATION_RE.match(value) if isinstance(value, str) else None
        if not match:
            doc.fail(node, path, f"{value!r} is not a duration; write e.g. 10s, 500ms or 2m")
        seconds = float(match.group(1)) * UNIT_S[match.group(2)]
    if not _finite(seconds):  # .inf, .nan, a number of 400 digits
        doc.fail(node, path, f"{node.value!r} is not a duration one can wait for; write e.g. "
                             "10s, 500ms or 2m")
    if seconds <= 0:
        doc.fail(node, path, f"{value!r} must be longer than zero")
    return seconds


def choice(choices: tuple[str, ...], what: str = "value") -> Parser:
    def parse(doc: Doc, node: yaml.Node, path: str) -> str:
        value = string(doc, node, path)
        if value not in choices:
            hint = did_you_mean(value, choices) or f"; use one of: {', '.join(choices)}"
            doc.fail(node, path, f"{value!r} is not a {what}{hint}")
        return value
    return parse


def matching(regex: re.Pattern[str], example: str) -> Parser:
    def parse(doc: Doc, node: yaml.Node, path: str) -> str:
        value = string(doc, node, path)
        if not regex.match(value):
            doc.fail(node, path, f"{value!r} is not valid here; write e.g. {example}")
        return value
    return parse


name = matching(NAME_RE, "'epoll-4k' (letters, digits, '.', '_', '-')")


def items(doc: Doc, node: yaml.Node, path: str) -> list[yaml.Node]:
    """A non-empty YAML list's item nodes."""
    if not isinstance(node, yaml.SequenceNode):
        doc.fail(node, path, f"expected a list; got {kind(doc, node)}")
    if not node.value:
        doc.fail(node, path, "is empty; give at least one item")
    return list(node.value)


def list_of(parse: Parser) -> Parser:
    """A non-empty list, each item through ``parse``; every bad item is reported."""
    def parse_list(doc: Doc, node: yaml.Node, path: str) -> tuple[Any, ...]:
        mark, out = doc.mark(), []
        for i, item in enumerate(items(doc, node, path)):
            try:
                out.append(parse(doc, item, f"{path}[{i}]"))
            except Invalid as exc:
                doc.record(exc)
        doc.settle(mark)
        return tuple(out)
    return parse_list
