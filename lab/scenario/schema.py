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

import dataclasses
import re
from typing import Any

import yaml

from contract import defaults
from contract.limits import LIMIT_KINDS
from contract.models import MODELS, ON_FD_LIMIT_MODELS, REUSEPORT_MODELS, WORKERS_MODELS
from contract.network import (
    SAFE_TARGETS_TEXT,
    is_safe_target,
)
from lab.scenario.errors import Invalid
from lab.scenario.fields import Field, Section, is_none
from lab.scenario.network_values import NETWORK, network
from lab.scenario.nodes import (
    Doc,
    Parser,
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
from lab.scenario.server_values import command, nofile, sysctls
from lab.scenario.types import (
    SLO,
    Expectation,
    ExponentialPace,
    GroupSpec,
    HostLimits,
    HostSpec,
    Limits,
    LoadSpec,
    Placement,
    Scenario,
    ServerSpec,
    SizeDistribution,
    Step,
)

MEMORY_RE = re.compile(r"^\d+(\.\d+)?[bkmgBKMG]?$")
CPUSET_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
ENDPOINT_RE = re.compile(r"^(local|unix://\S+|tcp://\S+|ssh://\S+)$")
DEFAULT_HOLD_S = 10.0


# -- parsers for one key ------------------------------------------------------------------------

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
MAX_MESSAGE_SIZE = defaults.MAX_MESSAGE_SIZE


def _message_bytes(doc: Doc, node: yaml.Node, path: str) -> int:
    value = number(doc, node, path, integer=True, minimum=1)
    if value > MAX_MESSAGE_SIZE:
        doc.fail(node, path, f"{value} is above 1 MiB; give at most {MAX_MESSAGE_SIZE} bytes")
    return value


def message_size(doc: Doc, node: yaml.Node, path: str) -> int:
    """Bytes per message, at most 1 MiB, or ``{median: 512, max: 65536}``
    (log-normal sizes, :class:`SizeDistribution`)."""
    if not isinstance(node, yaml.MappingNode):
        return _message_bytes(doc, node, path)
    got = SIZES.given(doc, m := SIZES.open(doc, node, path))
    if m.failed or len(got) < 2:
        raise Invalid(None)  # already reported
    if got["median"] > got["max"]:
        doc.fail(node, f"{path}.median", f"{got['median']} is above max ({got['max']}); "
                                         "give a median of at most the max")
    return SizeDistribution(got["median"], got["max"])


def _message_size_dump(value: int) -> Any:
    if isinstance(value, SizeDistribution):
        return {"median": value.median, "max": value.max}
    return value


def pace(doc: Doc, node: yaml.Node, path: str) -> float:
    """A duration, or ``{mean: 1s}``: exponential gaps with that mean (:class:`ExponentialPace`)."""
    if not isinstance(node, yaml.MappingNode):
        return duration(doc, node, path)
    got = PACE_MEAN.given(doc, m := PACE_MEAN.open(doc, node, path))
    if m.failed or "mean" not in got:
        raise Invalid(None)
    return ExponentialPace(got["mean"])


def _pace_dump(value: float) -> Any:
    return {"mean": seconds(float(value))} if isinstance(value, ExponentialPace) else seconds(value)


def gap(doc: Doc, node: yaml.Node, path: str) -> float:
    """A pause that may be zero: ``500ms``, ``0``."""
    value = scalar(doc, node, path, "a duration")
    text = str(value).strip()
    if text.startswith("-"):
        doc.fail(node, path, f"{text} is below zero; give 0 or a duration such as 500ms")
    if text in ("0", "0.0") or re.fullmatch(r"0+(\.0*)?\s*(ms|s|m|h)", text):
        return 0.0
    return duration(doc, node, path)


def worker_timeout(doc: Doc, node: yaml.Node, path: str) -> float:
    """A duration of at least 1 s (loadgen/listeners.py paces the heartbeats for it)."""
    value = duration(doc, node, path)
    if value < defaults.MIN_WORKER_TIMEOUT_S:
        doc.fail(node, path, f"{seconds(value)} is below {seconds(defaults.MIN_WORKER_TIMEOUT_S)}:"
                             " a worker must miss several heartbeats before it is lost")
    return value


def _unset(value: Any, obj: Any) -> bool:
    return not value


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


BUILT_IN = frozenset(MODELS)  # a key of the lab's own servers: a custom server cannot take it

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
    Field("block_us", int_at_least(0), models=BUILT_IN,
          applies="a wait without CPU in the lab's own handler"),
    Field("nodelay", boolean, models=BUILT_IN,
          applies="TCP_NODELAY on the lab's own accepted sockets"),
    Field("host", name),  # default: the first host
    Field("workers", int_at_least(1), omit=is_none, models=WORKERS_MODELS,
          applies="the pool size"),
    Field("processes", or_auto(int_at_least(1, 256)), models=REUSEPORT_MODELS,
          applies="processes, each with its own SO_REUSEPORT listener and nofile"),
))
# Server keys every server inherits (``limits`` merged key by key).
DEFAULTS = SERVER.subset("defaults", ("limits", "on_fd_limit", "work_us", "block_us", "nodelay",
                                      "workers", "processes", "host"))
CUSTOM_KEYS = ("image", "command", "port")  # a custom server's, not a built-in model's

STEP = Section("step", Step, (
    Field("connections", int_at_least(1), required="target connections"),
    Field("hold", duration, attr="hold_s", dump=seconds),  # default: load.hold
))

SIZES = Section("message_size", None, (
    Field("median", _message_bytes, required="the median size in bytes"),
    Field("max", _message_bytes, required="the largest size in bytes"),
))
PACE_MEAN = Section("pace", None, (
    Field("mean", duration, required="the mean gap, e.g. mean: 1s"),
))
# The keys a user group may set for itself (load.groups[]), declared once in LOAD.
GROUP_LOAD_KEYS = ("user", "message_size", "pace", "send_chunk", "send_gap", "recv_buffer",
                   "read_chunk", "read_gap", "network")

LOAD = Section("load", LoadSpec, (
    Field("user", choice(defaults.USER_CHOICES, "user kind")),
    Field("message_size", message_size, dump=_message_size_dump),
    Field("pace", pace, attr="pace_s", dump=_pace_dump),
    Field("connect_rate", positive, attr="spawn_rate"),
    Field("workers", load_workers, dump=lambda value: "auto" if value is None else value),
    Field("schedule", choice(defaults.SCHEDULE_CHOICES, "schedule")),
    Field("connect_timeout", duration, attr="connect_timeout_s", dump=seconds),
    Field("io_timeout", duration, attr="io_timeout_s", dump=seconds),
    Field("worker_timeout", worker_timeout, attr="worker_timeout_s", dump=seconds,
          omit=lambda value, load: value == defaults.WORKER_TIMEOUT_S),
    Field("hold", duration, attr=None, default=DEFAULT_HOLD_S),  # every step's default
    Field("steps", None, dump=_each(STEP),
          required="a list of target connections, e.g. steps: [200, 1000]"),
    Field("active_users", int_at_least(0),
          omit=lambda value, load: load.user != defaults.USER_IDLE),
    Field("messages_per_connection", int_at_least(1),
          omit=lambda value, load: load.user != defaults.USER_CHURN),
    Field("repeat", int_at_least(1, 100)),
    Field("send_chunk", int_at_least(1), omit=_unset),
    Field("send_gap", gap, attr="send_gap_s", dump=seconds, omit=_unset),
    Field("recv_buffer", int_at_least(defaults.MIN_RECV_BUFFER), omit=_unset),
    Field("read_chunk", int_at_least(1), omit=_unset),
    Field("read_gap", gap, attr="read_gap_s", dump=seconds, omit=_unset),
    Field("groups", None, dump=lambda groups: [GROUP.dump(g) for g in groups], omit=_unset),
    Field("network", network, dump=NETWORK.dump, omit=is_none),  # lab/host/tc.py applies it
))
GROUP = Section("group", GroupSpec, (
    Field("name", name, required="a name for the group's rows in groups.csv"),
    Field("weight", int_at_least(1)),
    *(dataclasses.replace(LOAD.field(key), omit=is_none) for key in GROUP_LOAD_KEYS),
))


def named_items(doc: Doc, node: yaml.Node, path: str, read: Parser,
                what: str) -> tuple[Any, ...]:
    """A non-empty list, each item through ``read`` (None: already reported),
    each item's ``name`` unique (``hosts``, ``load.groups``)."""
    mark, out = doc.mark(), []
    for i, item in enumerate(items(doc, node, path)):
        try:
            value = read(doc, item, f"{path}[{i}]")
        except Invalid as exc:
            doc.record(exc)
            continue
        if value is not None and any(v.name == value.name for v in out):
            doc.report(item, f"{path}[{i}].name",
                       f"'{value.name}' is used twice; give each {what} its own name")
        elif value is not None:
            out.append(value)
    doc.settle(mark)
    return tuple(out)


def groups(doc: Doc, node: yaml.Node, path: str) -> tuple[GroupSpec, ...]:
    """``load.groups``: a list of ``{name, weight, user?, load keys...}``; names unique."""
    return named_items(doc, node, path, GROUP.read, "group")

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
    Field("p99_ms_below", positive, omit=is_none),
    Field("error_rate_at_most", fraction, omit=is_none),
    Field("slower_than", name, omit=is_none),
    Field("times", positive, omit=is_none),
    Field("at", int_at_least(1), omit=is_none),
    Field("group", name, omit=is_none),
))
EXPECTED = ("limit", "holds", "p99_ms_below", "error_rate_at_most", "slower_than")


def expectations(doc: Doc, node: yaml.Node, path: str) -> tuple[Expectation, ...]:
    """``expect: {select: {limit: FD_SETSIZE}, epoll: {holds: 19000}}``, keyed by server
    name; a list under one name holds several (``epoll: [{at: 10, ...}, {at: 2000, ...}]``)."""
    if not isinstance(node, yaml.MappingNode):
        doc.fail(node, path, f"expected a mapping of server name: {{limit: ..., holds: ...}}; "
                             f"got {kind(doc, node)}")
    out = []
    for key_node, value_node in node.value:
        server = string(doc, key_node, path)
        sub = f"{path}.{spelled(server)}"
        many = isinstance(value_node, yaml.SequenceNode)
        for i, item in enumerate(items(doc, value_node, sub) if many else [value_node]):
            where = f"{sub}[{i}]" if many else sub
            m = EXPECT.open(doc, item, where)
            got = EXPECT.given(doc, m)
            if not got.keys() & set(EXPECTED) and not m.failed:
                doc.report(item, where, f"expects nothing; give one of {', '.join(EXPECTED)}")
            out.append(EXPECT.build(got, server=server))
    return tuple(out)


def expect_dump(items: tuple[Expectation, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in items:
        out.setdefault(e.server, []).append(EXPECT.dump(e))
    return {server: each[0] if len(each) == 1 else each for server, each in out.items()}


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
    Field("expect", expectations, dump=expect_dump, omit=lambda value, _: not value),
))
