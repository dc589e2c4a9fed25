"""The scenario format as data: one table per section, one :class:`Field` per key.

This is the whole vocabulary of ``scenarios/README.md``. Each key is declared
once, here: its YAML key, the attribute of the dataclass in
``lab/scenario/types.py`` it fills (when spelled differently: ``pace`` ->
``pace_s``, ``connect_rate`` -> ``spawn_rate``, ``hold`` -> ``hold_s``), its
parser, and how it is dumped (seconds -> ``"10s"``). The allowed keys and
their did-you-mean, parsing, the defaults (the dataclasses' own) and the
resolved dump are all driven by these tables (see ``lab/scenario/fields.py``),
so adding a key is adding one line here and one attribute in ``types.py``.

Keys that apply to some models only say so with ``models``, taken from
``contract/models.py`` so the schema and the servers' command line agree:
``workers`` (threadpool), ``on_fd_limit`` (select) and ``processes`` (the
event-driven models).

A field with ``parse=None`` depends on other fields (the hosts on
``allow_external_targets``, the steps on ``load.hold``, the servers on
``defaults`` and the first host); ``lab/scenario/build.py`` supplies its
parser. Table order is dump order, and parse order: a key is parsed after
the keys it depends on.
"""

from __future__ import annotations

import re
import shlex
from typing import Any

import yaml

from contract import defaults
from contract.limits import LIMIT_KINDS
from contract.models import MODELS, ON_FD_LIMIT_MODELS, REUSEPORT_MODELS, WORKERS_MODELS
from contract.network import (
    NAMESPACED_SYSCTL_PREFIXES,
    SAFE_TARGETS_TEXT,
    is_namespaced_sysctl,
    is_safe_target,
)
from lab.scenario.errors import Invalid
from lab.scenario.fields import Field, Section, is_none
from lab.scenario.nodes import (
    Doc,
    boolean,
    choice,
    duration,
    fraction,
    int_at_least,
    items,
    kind,
    list_of,
    matching,
    name,
    number,
    positive,
    scalar,
    spelled,
    string,
    text,
)
from lab.scenario.types import (
    SLO,
    Expectation,
    HostLimits,
    HostSpec,
    Limits,
    LoadSpec,
    Placement,
    Scenario,
    ServerSpec,
    Step,
)

MEMORY_RE = re.compile(r"^\d+(\.\d+)?[bkmgBKMG]?$")
CPUSET_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
ENDPOINT_RE = re.compile(r"^(local|unix://\S+|tcp://\S+|ssh://\S+)$")
DEFAULT_HOLD_S = 10.0


# -- parsers for one key ------------------------------------------------------------------------

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


def address(allow_external: bool) -> Any:
    def parse(doc: Doc, node: yaml.Node, path: str) -> str:
        value = string(doc, node, path)
        if not allow_external and not is_safe_target(value):
            doc.fail(node, path, f"{value} is not {SAFE_TARGETS_TEXT}; load goes elsewhere "
                                 "only with 'allow_external_targets: true' at the top level")
        return value
    return parse


def or_auto(parse: Any, auto: Any = "auto") -> Any:
    """A parser that takes ``auto`` (as the value ``auto``) or what ``parse`` takes."""
    def either(doc: Doc, node: yaml.Node, path: str) -> Any:
        if isinstance(node, yaml.ScalarNode) and doc.value(node, path) == "auto":
            return auto
        return parse(doc, node, path)
    return either


load_workers = or_auto(int_at_least(1, 512), None)


def seconds(value: float) -> str:
    """``10s``; every digit when ``:g`` would round it (the dump must read back equal)."""
    short = f"{value:g}"
    return f"{short if float(short) == value else repr(value)}s"


def _listed(value: tuple[Any, ...]) -> list[Any]:
    return list(value)


def _each(section: Section) -> Any:
    return lambda values: [section.dump(v) for v in values]


# -- the tables -----------------------------------------------------------------------------------

LIMITS = Section("limits", Limits, (
    Field("nofile", nofile),
    Field("backlog", int_at_least(1, 1 << 20)),
    Field("sysctls", sysctls, dump=dict, omit=lambda value, _: not value),
    Field("memory", matching(MEMORY_RE, "'512m' or '2g'"), omit=is_none),
    Field("cpuset", matching(CPUSET_RE, "'0' or '0-1'"), omit=is_none),
))


def limits_given(doc: Doc, node: yaml.Node, path: str) -> dict[str, Any]:
    """The limits a mapping sets (key -> value): merged key by key over
    ``defaults.limits`` and then the :class:`Limits` defaults."""
    return LIMITS.given(doc, LIMITS.open(doc, node, path))


SERVER = Section("server", ServerSpec, (
    Field("name", name),  # default: the model (custom servers must give it)
    Field("model", choice(MODELS, "model"), omit=is_none),
    Field("image", string, omit=is_none),
    Field("port", int_at_least(1, 65535), omit=is_none),
    Field("command", command, dump=_listed, omit=is_none),
    Field("limits", limits_given, dump=LIMITS.dump),  # parsed: the keys given; see build.py
    Field("on_fd_limit", choice(defaults.ON_FD_LIMIT_CHOICES, "choice"), models=ON_FD_LIMIT_MODELS,
          applies="what it does at descriptor 1024: refuse or crash"),
    Field("work_us", int_at_least(0)),
    Field("host", name),  # default: the first host
    Field("workers", int_at_least(1), omit=is_none, models=WORKERS_MODELS,
          applies="the pool size"),
    Field("processes", or_auto(int_at_least(1, 256)), models=REUSEPORT_MODELS,
          applies="processes, each with its own SO_REUSEPORT listener and nofile"),
))
# Server keys every server inherits (``limits`` merged key by key).
DEFAULTS = SERVER.subset("defaults", ("limits", "on_fd_limit", "work_us", "workers", "processes",
                                      "host"))
CUSTOM_KEYS = ("image", "command", "port")  # a custom server's, not a built-in model's

STEP = Section("step", Step, (
    Field("connections", int_at_least(1), required="target connections"),
    Field("hold", duration, attr="hold_s", dump=seconds),  # default: load.hold
))

LOAD = Section("load", LoadSpec, (
    Field("user", choice(defaults.USER_CHOICES, "user kind")),
    Field("message_size", int_at_least(1, 1 << 20)),
    Field("pace", duration, attr="pace_s", dump=seconds),
    Field("connect_rate", positive, attr="spawn_rate"),
    Field("workers", load_workers, dump=lambda value: "auto" if value is None else value),
    Field("schedule", choice(defaults.SCHEDULE_CHOICES, "schedule")),
    Field("connect_timeout", duration, attr="connect_timeout_s", dump=seconds),
    Field("io_timeout", duration, attr="io_timeout_s", dump=seconds),
    Field("hold", duration, attr=None, default=DEFAULT_HOLD_S),  # every step's default
    Field("steps", None, dump=_each(STEP),
          required="a list of target connections, e.g. steps: [200, 1000]"),
    Field("active_users", int_at_least(0),
          omit=lambda value, load: load.user != defaults.USER_IDLE),
    Field("messages_per_connection", int_at_least(1),
          omit=lambda value, load: load.user != defaults.USER_CHURN),
    Field("repeat", int_at_least(1, 100)),
))

SLO_TABLE = Section("slo", SLO, (
    Field("p99_ms", positive),
    Field("error_rate", fraction),
    Field("connect_p99_ms", positive, omit=is_none),
    Field("connect_error_rate", fraction, omit=is_none),
))

HOST = Section("host", HostSpec, (
    Field("name", name, required="a name servers refer to"),
    Field("endpoint", matching(ENDPOINT_RE, "ssh://user@host")),
    Field("address", address(allow_external=False)),
))

PLACEMENT = Section("placement", Placement, (
    Field("master", name),  # default: the first host
    Field("workers", list_of(name), dump=_listed),  # default: the first host
))

HOST_LIMITS = Section("host_limits", HostLimits, (
    Field("file_max", int_at_least(1024), omit=is_none),
    Field("raise_host_limits", boolean),
))

EXPECT = Section("expectation", Expectation, (
    Field("limit", choice((*LIMIT_KINDS, "none"), "limit kind"), omit=is_none),
    Field("holds", int_at_least(1), omit=is_none),
))


def expectations(doc: Doc, node: yaml.Node, path: str) -> tuple[Expectation, ...]:
    """``expect: {select: {limit: FD_SETSIZE}, epoll: {holds: 19000}}``, keyed by server name."""
    if not isinstance(node, yaml.MappingNode):
        doc.fail(node, path, f"expected a mapping of server name: {{limit: ..., holds: ...}}; "
                             f"got {kind(doc, node)}")
    out = []
    for key_node, value_node in node.value:
        server = string(doc, key_node, path)
        sub = f"{path}.{spelled(server)}"
        m = EXPECT.open(doc, value_node, sub)
        got = EXPECT.given(doc, m)
        if not got and not m.failed:
            doc.report(value_node, sub, "expects nothing; give limit: KIND and/or holds: N")
        out.append(EXPECT.build(got, server=server))
    return tuple(out)


def _expect_dump(items: tuple[Expectation, ...]) -> dict[str, Any]:
    return {e.server: EXPECT.dump(e) for e in items}


TOP = Section("scenario", Scenario, (
    Field("name", name),  # default: the file's stem
    Field("description", text),
    Field("backend", choice(("auto", "docker", "local"), "backend")),
    Field("allow_external_targets", boolean),
    Field("hosts", None, dump=_each(HOST)),
    Field("placement", None, dump=PLACEMENT.dump),
    Field("host_limits", HOST_LIMITS.read, dump=HOST_LIMITS.dump),
    Field("defaults", None, attr=None),  # server keys; see DEFAULTS
    Field("servers", None, dump=_each(SERVER),
          required="list the models to compare, e.g. servers: [select, poll, epoll]"),
    Field("load", None, dump=LOAD.dump, required="give at least load.steps"),
    Field("slo", SLO_TABLE.read, dump=SLO_TABLE.dump),
    Field("expect", expectations, dump=_expect_dump, omit=lambda value, _: not value),
))
