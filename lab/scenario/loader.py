"""Load a scenario file into a frozen :class:`lab.scenario.types.Scenario`, validated once.

The YAML is composed into nodes first (``yaml.compose``), so every error can
name the file, the line, the field path and the fix::

    lab.yaml:7: servers[2].model: 'epol' is not a model; did you mean 'epoll'?

Nothing downstream ever sees a raw dict: the run loop, the backends and the
report read only the typed values in ``lab/scenario/types.py``. The format is documented
in ``scenarios/README.md``; :func:`scenario_to_dict` is its inverse (the
resolved ``scenario.yaml`` a run directory keeps loads back to the same value).
"""

from __future__ import annotations

import dataclasses
import difflib
import re
import shlex
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

import yaml

from contract.models import MODELS
from contract.network import (
    NAMESPACED_SYSCTL_PREFIXES,
    SAFE_TARGETS_TEXT,
    is_namespaced_sysctl,
    is_safe_target,
)
from lab.errors import InputError
from lab.scenario.types import (
    SLO,
    HostLimits,
    HostSpec,
    Limits,
    LoadSpec,
    Placement,
    Scenario,
    ServerSpec,
    Step,
)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}
MEMORY_RE = re.compile(r"^\d+(\.\d+)?[bkmgBKMG]?$")
CPUSET_RE = re.compile(r"^\d+(-\d+)?(,\d+(-\d+)?)*$")
ENDPOINT_RE = re.compile(r"^(local|unix://\S+|tcp://\S+|ssh://\S+)$")
DEFAULT_HOLD_S = 10.0

TOP_KEYS = ("name", "description", "backend", "hosts", "placement", "host_limits",
            "defaults", "servers", "load", "slo", "allow_external_targets")
SERVER_KEYS = ("name", "model", "image", "command", "port", "limits", "on_fd_limit",
               "work_us", "workers", "host")
DEFAULT_KEYS = ("limits", "on_fd_limit", "work_us", "workers", "host")
LIMIT_KEYS = ("nofile", "backlog", "sysctls", "memory", "cpuset")
LOAD_KEYS = ("user", "active_users", "message_size", "pace", "connect_rate", "hold", "steps",
             "workers", "schedule", "connect_timeout", "io_timeout")
STEP_KEYS = ("connections", "hold")
SLO_KEYS = ("p99_ms", "error_rate")
HOST_KEYS = ("name", "endpoint", "address")
PLACEMENT_KEYS = ("master", "workers")
HOST_LIMIT_KEYS = ("file_max", "raise_host_limits")


def did_you_mean(word: str, choices: tuple[str, ...] | list[str]) -> str:
    """``"; did you mean 'epoll'?"`` when ``word`` is close to one of ``choices``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f"; did you mean '{close[0]}'?" if close else ""


class _Doc:
    """The file being read: its name (for messages) and the YAML constructor
    that turns scalar nodes into Python values."""

    def __init__(self, filename: str, loader: yaml.SafeLoader):
        self.filename = filename
        self.loader = loader

    def fail(self, node: yaml.Node | None, path: str, message: str) -> NoReturn:
        line = node.start_mark.line + 1 if node is not None else 1
        where = f"{path}: " if path else ""
        raise InputError(f"{self.filename}:{line}: {where}{message}")

    def value(self, node: yaml.Node) -> Any:
        return self.loader.construct_object(node, deep=True)


class _Map:
    """A YAML mapping node with its field path; refuses unknown keys with a
    did-you-mean and looks fields up, falling back to ``defaults`` mappings."""

    def __init__(self, doc: _Doc, node: yaml.Node, path: str, keys: tuple[str, ...],
                 fallbacks: tuple[_Map, ...] = ()):
        if not isinstance(node, yaml.MappingNode):
            doc.fail(node, path, f"expected a mapping with keys {', '.join(keys)}; "
                                 f"got {_kind(doc, node)}")
        doc.loader.flatten_mapping(node)
        self.doc, self.node, self.path, self.fallbacks = doc, node, path, fallbacks
        self.fields: dict[str, yaml.Node] = {}
        for key_node, value_node in node.value:
            key = doc.value(key_node)
            if not isinstance(key, str) or key not in keys:
                hint = did_you_mean(str(key), keys) or "; allowed here: " + ", ".join(keys)
                doc.fail(key_node, self.sub(str(key)), f"unknown key{hint}")
            if key in self.fields:
                doc.fail(key_node, self.sub(key), "appears twice; keep only one")
            self.fields[key] = value_node

    def sub(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def lookup(self, key: str) -> tuple[yaml.Node, str] | None:
        """The node for ``key`` and its path, here or in a fallback mapping."""
        if key in self.fields:
            return self.fields[key], self.sub(key)
        for fallback in self.fallbacks:
            found = fallback.lookup(key)
            if found:
                return found
        return None

    def get(self, key: str, parse: Callable[[_Doc, yaml.Node, str], Any], default: Any = None,
            required: str | None = None) -> Any:
        found = self.lookup(key)
        if found is None:
            if required:
                self.doc.fail(self.node, self.sub(key), f"is missing ({required})")
            return default
        node, path = found
        if _is_null(node) and not required:
            return default
        return parse(self.doc, node, path)


# -- scalar parsers: (doc, node, path) -> value --------------------------------------------------

def _kind(doc: _Doc, node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    value = doc.value(node)
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == "tag:yaml.org,2002:null"


def _scalar(doc: _Doc, node: yaml.Node, path: str, what: str) -> Any:
    if not isinstance(node, yaml.ScalarNode):
        doc.fail(node, path, f"expected {what}; got {_kind(doc, node)}")
    return doc.value(node)


def _string(doc: _Doc, node: yaml.Node, path: str) -> str:
    value = _scalar(doc, node, path, "a string")
    if isinstance(value, bool) or value is None:
        doc.fail(node, path, f"expected a string; got {_kind(doc, node)}")
    return str(value)


def _bool(doc: _Doc, node: yaml.Node, path: str) -> bool:
    value = _scalar(doc, node, path, "true or false")
    if not isinstance(value, bool):
        doc.fail(node, path, f"expected true or false; got {_kind(doc, node)}")
    return value


def _number(doc: _Doc, node: yaml.Node, path: str, *, integer: bool, minimum: float,
            maximum: float | None = None, exclusive: bool = False) -> Any:
    what = "an integer" if integer else "a number"
    value = _scalar(doc, node, path, what)
    ok_type = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, ok_type):
        doc.fail(node, path, f"expected {what}; got {_kind(doc, node)}")
    if value < minimum or (exclusive and value == minimum):
        doc.fail(node, path, f"{value} is too small; use a number "
                             f"{'above' if exclusive else 'of at least'} {minimum:g}")
    if maximum is not None and value > maximum:
        doc.fail(node, path, f"{value} is too large; the most allowed is {maximum:g}")
    return value


def _int_at_least(minimum: int, maximum: int | None = None) -> Callable[..., int]:
    return lambda doc, node, path: _number(doc, node, path, integer=True, minimum=minimum,
                                           maximum=maximum)


def _positive(doc: _Doc, node: yaml.Node, path: str) -> float:
    return float(_number(doc, node, path, integer=False, minimum=0, exclusive=True))


def _fraction(doc: _Doc, node: yaml.Node, path: str) -> float:
    return float(_number(doc, node, path, integer=False, minimum=0, maximum=1))


def _duration(doc: _Doc, node: yaml.Node, path: str) -> float:
    """``10s``, ``500ms``, ``2m``, ``1h`` or a bare number of seconds; above zero."""
    value = _scalar(doc, node, path, "a duration")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    else:
        match = DURATION_RE.match(str(value)) if isinstance(value, str) else None
        if not match:
            doc.fail(node, path, f"{value!r} is not a duration; write e.g. 10s, 500ms or 2m")
        seconds = float(match.group(1)) * UNIT_S[match.group(2)]
    if seconds <= 0:
        doc.fail(node, path, f"{value!r} must be longer than zero")
    return seconds


def _choice(choices: tuple[str, ...], what: str = "value") -> Callable[..., str]:
    def parse(doc: _Doc, node: yaml.Node, path: str) -> str:
        value = _string(doc, node, path)
        if value not in choices:
            hint = did_you_mean(value, choices) or f"; use one of: {', '.join(choices)}"
            doc.fail(node, path, f"{value!r} is not a {what}{hint}")
        return value
    return parse


def _matching(regex: re.Pattern[str], example: str) -> Callable[..., str]:
    def parse(doc: _Doc, node: yaml.Node, path: str) -> str:
        value = _string(doc, node, path)
        if not regex.match(value):
            doc.fail(node, path, f"{value!r} is not valid here; write e.g. {example}")
        return value
    return parse


def _name(doc: _Doc, node: yaml.Node, path: str) -> str:
    return _matching(NAME_RE, "'epoll-4k' (letters, digits, '.', '_', '-')")(doc, node, path)


def _list(doc: _Doc, node: yaml.Node, path: str) -> list[yaml.Node]:
    """A non-empty YAML list's item nodes."""
    if not isinstance(node, yaml.SequenceNode):
        doc.fail(node, path, f"expected a list; got {_kind(doc, node)}")
    if not node.value:
        doc.fail(node, path, "is empty; give at least one item")
    return list(node.value)


# -- sections --------------------------------------------------------------------------------

def _nofile(doc: _Doc, node: yaml.Node, path: str) -> int | str:
    value = _scalar(doc, node, path, "'max' or an integer")
    if value == "max":
        return "max"
    if isinstance(value, str):
        doc.fail(node, path, f"{value!r} is not 'max' or a number of open files")
    return _number(doc, node, path, integer=True, minimum=32)


def _sysctls(doc: _Doc, node: yaml.Node, path: str) -> tuple[tuple[str, str], ...]:
    if not isinstance(node, yaml.MappingNode):
        doc.fail(node, path, f"expected a mapping of sysctl: value; got {_kind(doc, node)}")
    out = []
    for key_node, value_node in node.value:
        key = _string(doc, key_node, path)
        sub = f"{path}.{key}"
        if not is_namespaced_sysctl(key):
            doc.fail(key_node, sub, "is not a namespaced sysctl (a container can set only "
                                    f"{', '.join(p + '*' for p in NAMESPACED_SYSCTL_PREFIXES)}); "
                                    "host-wide limits go under host_limits")
        out.append((key, _string(doc, value_node, sub)))
    return tuple(sorted(out))


def _limits(doc: _Doc, node: yaml.Node | None, path: str, fallback: _Map | None) -> Limits:
    fallbacks = (fallback,) if fallback else ()
    if node is None:
        if fallback is None:
            return Limits()
        view = fallback
    else:
        view = _Map(doc, node, path, LIMIT_KEYS, fallbacks)
    base = Limits()
    return Limits(
        nofile=view.get("nofile", _nofile, base.nofile),
        backlog=view.get("backlog", _int_at_least(1, 1 << 20), base.backlog),
        sysctls=view.get("sysctls", _sysctls, base.sysctls),
        memory=view.get("memory", _matching(MEMORY_RE, "'512m' or '2g'"), base.memory),
        cpuset=view.get("cpuset", _matching(CPUSET_RE, "'0' or '0-1'"), base.cpuset),
    )


def _command(doc: _Doc, node: yaml.Node, path: str) -> tuple[str, ...]:
    if isinstance(node, yaml.SequenceNode):
        words = tuple(_string(doc, n, f"{path}[{i}]") for i, n in enumerate(_list(doc, node, path)))
    else:
        words = tuple(shlex.split(_string(doc, node, path)))
    if not words:
        doc.fail(node, path, "is empty; give the program and its arguments")
    return words


def _server(doc: _Doc, node: yaml.Node, path: str, defaults: _Map | None,
            limit_defaults: _Map | None, default_host: str) -> ServerSpec:
    if isinstance(node, yaml.ScalarNode):  # short form "- epoll" means "- model: epoll"
        key = yaml.ScalarNode("tag:yaml.org,2002:str", "model", node.start_mark, node.end_mark)
        node = yaml.MappingNode("tag:yaml.org,2002:map", [(key, node)], node.start_mark,
                                node.end_mark)
    m = _Map(doc, node, path, SERVER_KEYS, (defaults,) if defaults else ())
    model = m.get("model", _choice(MODELS, "model"))
    custom = {k: m.fields[k] for k in ("image", "command", "port") if k in m.fields}
    if model is not None and custom:
        key = next(iter(custom))
        doc.fail(custom[key], m.sub(key), f"a built-in model ('{model}') runs the lab's own "
                                          f"server; remove '{key}' or remove 'model'")
    if model is None:
        if "image" not in custom and "command" not in custom:
            doc.fail(node, path, "needs 'model' (one of the built-in models) or, for a custom "
                                 "server, 'image' and/or 'command' plus 'port'")
        m.get("port", _int_at_least(1, 65535), required="the port the custom server listens on")
        m.get("name", _name, required="a custom server needs a name for its results rows")
    limits_node = m.fields.get("limits")
    return ServerSpec(
        name=m.get("name", _name, model),
        model=model,
        image=m.get("image", _string),
        command=m.get("command", _command),
        port=m.get("port", _int_at_least(1, 65535)),
        limits=_limits(doc, limits_node, m.sub("limits"), limit_defaults),
        on_fd_limit=m.get("on_fd_limit", _choice(("refuse", "crash"), "choice"), "refuse"),
        work_us=m.get("work_us", _int_at_least(0), 0),
        workers=m.get("workers", _int_at_least(1)),
        host=m.get("host", _name, default_host),
    )


def _servers(doc: _Doc, top: _Map, default_host: str) -> tuple[ServerSpec, ...]:
    defaults = limit_defaults = None
    if "defaults" in top.fields:
        defaults = _Map(doc, top.fields["defaults"], "defaults", DEFAULT_KEYS)
        if "limits" in defaults.fields:
            limit_defaults = _Map(doc, defaults.fields["limits"], "defaults.limits", LIMIT_KEYS)
    node = top.lookup("servers")
    if node is None:
        doc.fail(top.node, "servers", "is missing (list the models to compare, e.g. "
                                      "servers: [select, poll, epoll])")
    servers, seen = [], {}
    for i, item in enumerate(_list(doc, node[0], "servers")):
        spec = _server(doc, item, f"servers[{i}]", defaults, limit_defaults, default_host)
        if spec.name in seen:
            doc.fail(item, f"servers[{i}].name", f"'{spec.name}' is already used by "
                                                 f"servers[{seen[spec.name]}]; give each a "
                                                 "distinct 'name'")
        seen[spec.name] = i
        servers.append(spec)
    return tuple(servers)


def _steps(doc: _Doc, node: yaml.Node, path: str, hold: float) -> tuple[Step, ...]:
    steps: list[Step] = []
    for i, item in enumerate(_list(doc, node, path)):
        sub = f"{path}[{i}]"
        if isinstance(item, yaml.MappingNode):
            m = _Map(doc, item, sub, STEP_KEYS)
            conns = m.get("connections", _int_at_least(1), required="target connections")
            step = Step(connections=conns, hold_s=m.get("hold", _duration, hold))
            conn_node = m.fields["connections"]
            conn_path = m.sub("connections")
        else:
            step = Step(connections=_int_at_least(1)(doc, item, sub), hold_s=hold)
            conn_node, conn_path = item, sub
        if steps and step.connections <= steps[-1].connections:
            doc.fail(conn_node, conn_path, f"{step.connections} is not above the previous "
                                           f"step ({steps[-1].connections}); steps must "
                                           "increase")
        steps.append(step)
    return tuple(steps)


def _workers_count(doc: _Doc, node: yaml.Node, path: str) -> int | None:
    if isinstance(node, yaml.ScalarNode) and doc.value(node) == "auto":
        return None
    return _int_at_least(1, 512)(doc, node, path)


def _load(doc: _Doc, top: _Map) -> LoadSpec:
    found = top.lookup("load")
    if found is None:
        doc.fail(top.node, "load", "is missing (give at least load.steps)")
    m = _Map(doc, found[0], "load", LOAD_KEYS)
    hold = m.get("hold", _duration, DEFAULT_HOLD_S)
    steps = m.get("steps", lambda d, n, p: _steps(d, n, p, hold),
                  required="a list of target connections, e.g. steps: [200, 1000]")
    user = m.get("user", _choice(("echo", "idle"), "user kind"), "echo")
    active = m.get("active_users", _int_at_least(0), 0)
    if active and user != "idle":
        doc.fail(m.fields["active_users"], "load.active_users",
                 "only applies with 'user: idle' (active users among idle ones)")
    if active > steps[0].connections:
        doc.fail(m.fields["active_users"], "load.active_users",
                 f"{active} is more than the first step's {steps[0].connections} connections")
    base = LoadSpec()
    return LoadSpec(
        user=user, active_users=active, steps=steps,
        message_size=m.get("message_size", _int_at_least(1, 1 << 20), base.message_size),
        pace_s=m.get("pace", _duration, base.pace_s),
        spawn_rate=m.get("connect_rate", _positive, base.spawn_rate),
        workers=m.get("workers", _workers_count),
        schedule=m.get("schedule", _choice(("closed", "fixed"), "schedule"), base.schedule),
        connect_timeout_s=m.get("connect_timeout", _duration, base.connect_timeout_s),
        io_timeout_s=m.get("io_timeout", _duration, base.io_timeout_s),
    )


def _address(allow_external: bool) -> Callable[..., str]:
    def parse(doc: _Doc, node: yaml.Node, path: str) -> str:
        value = _string(doc, node, path)
        if not allow_external and not is_safe_target(value):
            doc.fail(node, path, f"{value} is not {SAFE_TARGETS_TEXT}; load goes elsewhere "
                                 "only with 'allow_external_targets: true' at the top level")
        return value
    return parse


def _hosts(doc: _Doc, top: _Map, allow_external: bool) -> tuple[HostSpec, ...]:
    found = top.lookup("hosts")
    if found is None:
        return (HostSpec(name="local"),)
    hosts: list[HostSpec] = []
    for i, item in enumerate(_list(doc, found[0], "hosts")):
        m = _Map(doc, item, f"hosts[{i}]", HOST_KEYS)
        host = HostSpec(name=m.get("name", _name, required="a name servers refer to"),
                        endpoint=m.get("endpoint", _matching(ENDPOINT_RE, "ssh://user@host"),
                                       "local"),
                        address=m.get("address", _address(allow_external), "127.0.0.1"))
        if any(h.name == host.name for h in hosts):
            doc.fail(item, f"hosts[{i}].name",
                     f"'{host.name}' is used twice; give each host its own name")
        hosts.append(host)
    return tuple(hosts)


def _check_host_refs(doc: _Doc, root: yaml.Node, scenario: Scenario) -> None:
    names = tuple(h.name for h in scenario.hosts)
    refs = [(f"servers[{i}].host", s.host) for i, s in enumerate(scenario.servers)]
    refs.append(("placement.master", scenario.placement.master))
    refs += [(f"placement.workers[{i}]", w) for i, w in enumerate(scenario.placement.workers)]
    for path, name in refs:
        if name not in names:
            hint = did_you_mean(name, names) or f"; hosts are: {', '.join(names)}"
            doc.fail(_node_at(root, path), path, f"'{name}' is not a host{hint}")


def _node_at(root: yaml.Node, path: str) -> yaml.Node:
    """The deepest node along ``a.b[2].c`` that exists (for an error's line)."""
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


def _build(doc: _Doc, root: yaml.Node, default_name: str) -> Scenario:
    top = _Map(doc, root, "", TOP_KEYS)
    allow_external = top.get("allow_external_targets", _bool, False)
    hosts = _hosts(doc, top, allow_external)
    first = hosts[0].name
    placement = Placement(master=first, workers=(first,))
    if "placement" in top.fields:
        pm = _Map(doc, top.fields["placement"], "placement", PLACEMENT_KEYS)
        placement = Placement(
            master=pm.get("master", _name, first),
            workers=pm.get("workers", lambda d, n, p: tuple(
                _name(d, x, f"{p}[{i}]") for i, x in enumerate(_list(d, n, p))), (first,)))
    host_limits = HostLimits()
    if "host_limits" in top.fields:
        hm = _Map(doc, top.fields["host_limits"], "host_limits", HOST_LIMIT_KEYS)
        host_limits = HostLimits(file_max=hm.get("file_max", _int_at_least(1024)),
                                 raise_host_limits=hm.get("raise_host_limits", _bool, False))
    slo = SLO()
    if "slo" in top.fields:
        sm = _Map(doc, top.fields["slo"], "slo", SLO_KEYS)
        slo = SLO(p99_ms=sm.get("p99_ms", _positive, slo.p99_ms),
                  error_rate=sm.get("error_rate", _fraction, slo.error_rate))
    scenario = Scenario(
        name=top.get("name", _name, default_name),
        description=top.get("description", _string, "").strip(),
        backend=top.get("backend", _choice(("auto", "docker", "local"), "backend"), "auto"),
        servers=_servers(doc, top, first),
        load=_load(doc, top),
        slo=slo, hosts=hosts, placement=placement, host_limits=host_limits,
        allow_external_targets=allow_external,
    )
    _check_host_refs(doc, root, scenario)
    return scenario


def _default_name(path: Path) -> str:
    name = re.sub(r"[^A-Za-z0-9_.-]", "-", path.stem).strip("-.") or "scenario"
    return name if NAME_RE.match(name) else "scenario"


def parse_scenario(text: str, filename: str = "<scenario>", source: Path | None = None
                   ) -> Scenario:
    """Parse and validate scenario YAML text; raises :class:`InputError`."""
    loader = yaml.SafeLoader(text)
    doc = _Doc(filename, loader)
    try:
        root = loader.get_single_node()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else 1
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise InputError(f"{filename}:{line}: not valid YAML: {problem}") from None
    finally:
        loader.dispose()
    if root is None or _is_null(root):
        raise InputError(f"{filename}:1: the file is empty; a scenario needs at least "
                         "'servers' and 'load' (see scenarios/README.md)")
    scenario = _build(doc, root, _default_name(Path(filename)))
    return dataclasses.replace(scenario, source_path=source)


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file; every problem is an :class:`InputError`."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{path}: no such scenario file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the scenario: {exc}") from None
    return parse_scenario(text, str(path), source=path.resolve())


def select_servers(scenario: Scenario, names: list[str]) -> Scenario:
    """The scenario restricted to the named servers (``--models a,b``), in their order."""
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
    return dataclasses.replace(scenario, servers=tuple(chosen))


# -- the resolved scenario as plain data ------------------------------------------------------

def _seconds(value: float) -> str:
    return f"{value:g}s"


def _limits_dict(limits: Limits) -> dict[str, Any]:
    out: dict[str, Any] = {"nofile": limits.nofile, "backlog": limits.backlog}
    if limits.sysctls:
        out["sysctls"] = dict(limits.sysctls)
    for key in ("memory", "cpuset"):
        if getattr(limits, key) is not None:
            out[key] = getattr(limits, key)
    return out


def _server_dict(spec: ServerSpec) -> dict[str, Any]:
    out: dict[str, Any] = {"name": spec.name}
    if spec.model:
        out["model"] = spec.model
    for key in ("image", "port"):
        if getattr(spec, key) is not None:
            out[key] = getattr(spec, key)
    if spec.command is not None:
        out["command"] = list(spec.command)
    out.update(limits=_limits_dict(spec.limits), on_fd_limit=spec.on_fd_limit,
               work_us=spec.work_us, host=spec.host)
    if spec.workers is not None:
        out["workers"] = spec.workers
    return out


def scenario_to_dict(scenario: Scenario) -> dict[str, Any]:
    """The resolved scenario (every default filled in) as YAML-ready plain data;
    :func:`parse_scenario` of its YAML gives back an equal :class:`Scenario`."""
    load = scenario.load
    load_dict: dict[str, Any] = {
        "user": load.user, "message_size": load.message_size, "pace": _seconds(load.pace_s),
        "connect_rate": load.spawn_rate,
        "workers": "auto" if load.workers is None else load.workers,
        "schedule": load.schedule, "connect_timeout": _seconds(load.connect_timeout_s),
        "io_timeout": _seconds(load.io_timeout_s),
        "steps": [{"connections": s.connections, "hold": _seconds(s.hold_s)} for s in load.steps],
    }
    if load.user == "idle":
        load_dict["active_users"] = load.active_users
    out: dict[str, Any] = {
        "name": scenario.name, "description": scenario.description, "backend": scenario.backend,
        "allow_external_targets": scenario.allow_external_targets,
        "hosts": [dataclasses.asdict(h) for h in scenario.hosts],
        "placement": {"master": scenario.placement.master,
                      "workers": list(scenario.placement.workers)},
        "host_limits": dataclasses.asdict(scenario.host_limits),
        "servers": [_server_dict(s) for s in scenario.servers],
        "load": load_dict,
        "slo": dataclasses.asdict(scenario.slo),
    }
    if out["host_limits"]["file_max"] is None:
        del out["host_limits"]["file_max"]
    return out


def scenario_to_yaml(scenario: Scenario) -> str:
    return yaml.safe_dump(scenario_to_dict(scenario), sort_keys=False, default_flow_style=False)
