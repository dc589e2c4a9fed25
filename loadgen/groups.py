"""User groups (``--groups``): several kinds of client in one load, each counted apart.

A group is a Locust user class of its own (:func:`loadgen.users.group_classes`)
with a weight (Locust shares the users out by weight) and overrides of the
per-user options: ``user`` (echo, idle, churn), ``message_size``, ``pace`` and
the keys of :data:`~loadgen.options.CLIENT_KEYS` (slow senders and readers,
size and pace distributions). The spec is JSON, so the lab passes it as one
option to the master and to every worker alike::

    --groups '[{"name": "fast", "weight": 2, "user": "churn"},
               {"name": "slowloris", "weight": 1, "send_chunk": 1, "send_gap": 0.5}]'

Each group's clients record into their group's meter as well as the
process's (:class:`Tee`); the step line's ``groups`` key has one merged record
per group (:func:`loadgen.meter.merge_groups`).
"""

from __future__ import annotations

import dataclasses
import json
import re
from typing import Any

from loadgen.options import (
    CLIENT_KEYS,
    MAX_MESSAGE_SIZE,
    MIN_RECV_BUFFER,
    PACE_DISTS,
    LoadOptions,
    _option,
    _validated,
)

GROUP_OVERRIDES: dict[str, tuple[str, Any]] = {
    "message_size": ("message_size", int),
    "pace": ("pace_s", float),
    "messages_per_connection": ("messages_per_connection", int),
    **CLIENT_KEYS,
}
GROUP_USERS = ("echo", "idle", "churn")
GROUP_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


def _check_group_value(where: str, key: str, value: Any) -> None:
    """One override's bounds, as the options above check them (ValueError)."""
    if key == "pace_dist":
        if value not in PACE_DISTS:
            raise ValueError(f"{where}.pace_dist: {value!r} is not one of {', '.join(PACE_DISTS)}")
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}.{key}: {value!r} is not a number")
    least = 1 if key in ("message_size", "send_chunk", "read_chunk",
                         "messages_per_connection") else 0
    if value < least:
        raise ValueError(f"{where}.{key}: {value} is below the least allowed, {least}")
    if key.startswith("message_size") and value > MAX_MESSAGE_SIZE:
        raise ValueError(f"{where}.{key}: {value} is above 1 MiB ({MAX_MESSAGE_SIZE})")
    if key == "recv_buffer" and 0 < value < MIN_RECV_BUFFER:
        raise ValueError(f"{where}.recv_buffer: {value} is below {MIN_RECV_BUFFER}")


def parse_groups(text: str) -> tuple[dict[str, Any], ...]:
    """``--groups`` JSON -> the groups, each ``{"name", "weight", "user"?, overrides...}``.

    Raises ValueError naming the group and key: a bad name or a repeated one,
    a weight that is not a positive integer, an unknown key or user, a value
    out of its option's bounds."""
    if not text.strip():
        return ()
    try:
        groups = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"--groups is not JSON: {exc}") from None
    if not isinstance(groups, list) or not groups:
        raise ValueError("--groups must be a non-empty JSON list of groups")
    seen: set[str] = set()
    for i, group in enumerate(groups):
        where = f"groups[{i}]"
        if not isinstance(group, dict):
            raise ValueError(f"{where}: expected an object with name and weight")
        name = group.get("name")
        if not isinstance(name, str) or not GROUP_NAME_RE.match(name):
            raise ValueError(f"{where}.name: {name!r} is not a name (letters, digits, . _ -)")
        if name in seen:
            raise ValueError(f"{where}.name: {name!r} is used twice; give each group its own")
        seen.add(name)
        weight = group.get("weight", 1)
        if isinstance(weight, bool) or not isinstance(weight, int) or weight <= 0:
            raise ValueError(f"{where}.weight: {weight!r} is not a positive integer")
        if group.get("user", "echo") not in GROUP_USERS:
            raise ValueError(f"{where}.user: {group['user']!r} is not one of "
                             f"{', '.join(GROUP_USERS)}")
        for key, value in group.items():
            if key in ("name", "weight", "user"):
                continue
            if key not in GROUP_OVERRIDES:
                raise ValueError(f"{where}: unknown key {key!r}; allowed: name, weight, user, "
                                 + ", ".join(GROUP_OVERRIDES))
            _check_group_value(where, key, value)
    return tuple(groups)


def groups_in_argv(argv: list[str]) -> tuple[dict[str, Any], ...]:
    """The ``--groups`` of a command line, read before Locust parses it: the
    locustfile must define one user class per group when it is imported, and
    Locust imports it before its own parser knows the loadgen options. A bad
    spec is left for the parser to refuse (exit 2, with the message)."""
    text = ""
    for i, arg in enumerate(argv):
        if arg == "--groups" and i + 1 < len(argv):
            text = argv[i + 1]
        elif arg.startswith("--groups="):
            text = arg.split("=", 1)[1]
    try:
        return parse_groups(text)
    except ValueError:
        return ()


def add_groups_argument(parser: Any) -> None:
    """``--groups`` in its own ``--help`` section (``init_command_line_parser``)."""
    g = parser.add_argument_group("iolab user groups (loadgen/groups.py)")
    _option(g, "--groups", type=_validated(parse_groups), default="", web_ui=False,
            help='user groups as JSON, e.g. \'[{"name": "fast", "weight": 2, "user": "churn"}, '
                 '{"name": "slow", "weight": 1, "send_chunk": 1, "send_gap": 0.5}]\'; '
                 "give the same to the master and every worker, and select the classes "
                 "Group_<name>")


def group_options(opts: LoadOptions, group: dict[str, Any]) -> LoadOptions:
    """``opts`` with a group's overrides."""
    changes = {attr: conv(group[key]) for key, (attr, conv) in GROUP_OVERRIDES.items()
               if key in group}
    return dataclasses.replace(opts, **changes)


class Tee:
    """Records into several meters at once: a group's client calls
    ``meter.echo_ok(...)`` or ``meter.phases.connect_ok(...)`` once and both
    the process's meter and its group's count it. Each name is looked up once
    and kept (``__getattr__`` runs only for a name not yet set), so a call
    costs one extra Python call per meter."""

    def __init__(self, *targets: Any) -> None:
        self._targets = targets

    def __getattr__(self, name: str) -> Any:
        found = [getattr(t, name) for t in self._targets]
        if callable(found[0]):
            def call(*args: Any, **kwargs: Any) -> None:
                for f in found:
                    f(*args, **kwargs)
            value: Any = call
        else:
            value = Tee(*found)
        setattr(self, name, value)
        return value
