"""The load generator's command-line options, and the parsing behind them.

Options are added through Locust's ``init_command_line_parser`` event, so they
show in ``--help``, in the web UI's start form (``include_in_web_ui``) and in
``environment.parsed_options``. Two Locust facts shape this module:

* The master ships ``vars(parsed_options)`` to every worker in each ``spawn``
  message, and the worker overwrites its own values for every non-Locust
  option with the master's. So the values must stay plain ``str``/``int``/
  ``float`` (they travel as msgpack), and anything that is *worker-local*
  (``--source-ips``: each worker container has its own addresses;
  ``--target-port``: each worker its own published port of the server;
  ``--worker-timeout``) must be kept aside when the worker's own command line
  is parsed (:func:`worker_local`). ``init`` is too late: a worker connects to
  the master inside Locust's ``WorkerRunner`` constructor, and the master
  sends its first spawn message as soon as the last expected worker is ready,
  so that message can be applied before ``init`` fires (a CI run: the worker
  that connected last opened all 150 of its connections from 127.0.0.1).
* The web UI converts a submitted field with ``type(current_value)(text)``,
  so a structured value (a list of steps) cannot live in ``parsed_options``
  either. ``--steps`` and ``--source-ips`` are therefore validated strings,
  parsed where they are used (:func:`parse_steps`, :func:`parse_source_ips`).
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import re
import socket
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from contract import defaults
from contract.env import ALLOW_EXTERNAL_TARGETS
from contract.limits import TIMEOUT
from contract.network import SAFE_TARGETS_TEXT, is_safe_target


@dataclass(frozen=True)
class Step:
    users: int  # target users (each holds one connection)
    hold_s: float  # seconds held at that level once the ramp is done


_STEP_RE = re.compile(r"^\s*(\d+)\s*:\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)?\s*$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, None: 1.0}


def parse_steps(text: str) -> tuple[Step, ...]:
    """``"500:20s,1000:20s,5000:1m"`` -> steps. Raises ValueError naming the bad part."""
    steps = []
    for part in (p for p in text.split(",") if p.strip()):
        m = _STEP_RE.match(part)
        if not m:
            raise ValueError(f"{part.strip()!r} is not USERS:HOLD (e.g. 500:20s)")
        hold = float(m.group(2)) * _UNIT_S[m.group(3)]
        if hold <= 0:
            raise ValueError(f"{part.strip()!r}: the hold time must be positive")
        steps.append(Step(int(m.group(1)), hold))
    return tuple(steps)


def parse_source_ips(text: str) -> tuple[str, ...]:
    """``"127.0.0.2-127.0.0.9,127.0.1.1"`` -> the addresses, in order.

    Ranges are inclusive and must stay inside one address family.
    """
    ips: list[str] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        first, _, last = part.partition("-")
        lo = ipaddress.ip_address(first.strip())
        hi = ipaddress.ip_address(last.strip()) if last else lo
        if hi.version != lo.version or int(hi) < int(lo):
            raise ValueError(f"{part!r} is not an ascending address range")
        if int(hi) - int(lo) >= 65536:
            raise ValueError(f"{part!r} spans more than 65536 addresses")
        ips.extend(str(ipaddress.ip_address(n)) for n in range(int(lo), int(hi) + 1))
    return tuple(ips)


DEFAULT_MESSAGES_PER_CONNECTION = 1  # ChurnUser
DEFAULT_ARRIVAL_RATE = 0.0  # ChurnUser: 0 = closed model
MAX_MESSAGE_SIZE = defaults.MAX_MESSAGE_SIZE  # buffers are sized for the largest, per user
MIN_RECV_BUFFER = defaults.MIN_RECV_BUFFER
PACE_FIXED, PACE_EXPONENTIAL, PACE_DISTS = (defaults.PACE_FIXED, defaults.PACE_EXPONENTIAL,
                                            defaults.PACE_DISTS)
# Log-normal sizes: the asked max is this many standard deviations above the
# median in log space (the 99.9th percentile); the rarer larger draws are cut to max.
LOGNORMAL_MAX_Z = 3.09


def _at_least(least: float, kind: type):
    """An argparse ``type``: a number of ``kind`` that is at least ``least``."""

    def check(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if value < least:
            raise argparse.ArgumentTypeError(f"{text} is below the least allowed, {least:g}")
        return value

    check.__name__ = kind.__name__
    return check


def _validated(parse):
    """An argparse ``type`` that validates with ``parse`` but keeps the string."""

    def check(text: str) -> str:
        try:
            parse(text)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
        return text

    check.__name__ = parse.__name__.removeprefix("parse_")
    return check


def _between(least: int, most: int):
    """An argparse ``type``: an int in ``[least, most]``."""
    floor = _at_least(least, int)

    def check(text: str) -> int:
        value = floor(text)
        if value > most:
            raise argparse.ArgumentTypeError(f"{text} is above the most allowed, {most}")
        return value

    check.__name__ = "int"
    return check


def _recv_buffer(text: str) -> int:
    value = _at_least(0, int)(text)
    if 0 < value < MIN_RECV_BUFFER:
        raise argparse.ArgumentTypeError(
            f"{text} is below {MIN_RECV_BUFFER}; use 0 (the kernel's default) or at least "
            f"{MIN_RECV_BUFFER}")
    return value


# The worker-local options' values as this process's own command line (or
# their defaults) gave them: filled while the command line is parsed, never
# touched by the master's spawn messages.
_STARTED_WITH: dict[str, Any] = {}


class _WorkerLocal(argparse.Action):
    """``store``, plus a copy in :data:`_STARTED_WITH` that the master's
    ``vars(parsed_options).update(...)`` cannot reach."""

    def __call__(self, parser: Any, namespace: Any, values: Any, option_string: Any = None) -> None:
        setattr(namespace, self.dest, values)
        _STARTED_WITH[self.dest] = values


def worker_local(parsed: Any, dest: str) -> Any:
    """This process's own value of a worker-local option, whatever the
    master's spawn messages wrote into ``parsed_options`` since. Without a
    parse in this process (an environment built by hand), ``parsed``'s."""
    if dest in _STARTED_WITH:
        return _STARTED_WITH[dest]
    return getattr(parsed, dest, None)


def add_arguments(parser: Any) -> None:
    """Register the loadgen options on Locust's parser (``init_command_line_parser``).

    They go into their own ``--help`` section. An argparse group's
    ``add_argument`` does not know Locust's ``include_in_web_ui`` keyword, so
    :func:`_option` sets the attributes Locust's web UI looks for itself.
    """
    g = parser.add_argument_group("iolab load generator (loadgen/)")
    _STARTED_WITH.clear()  # a new parser: its parse fills it again
    _option(g, "--message-size", type=_between(1, MAX_MESSAGE_SIZE),
            default=defaults.MESSAGE_SIZE,
            help="bytes per echo, at most 1 MiB (default %(default)s)")
    _option(g, "--pace", type=_at_least(0, float), default=defaults.PACE_S,
            help="seconds between one user's echoes; 0 = flat out (default %(default)s)")
    _option(g, "--connect-timeout", type=float, default=defaults.CONNECT_TIMEOUT_S,
            help=f"seconds before a connect counts as '{TIMEOUT}' (default %(default)s)")
    _option(g, "--io-timeout", type=float, default=defaults.IO_TIMEOUT_S,
            help=f"seconds before an echo counts as '{TIMEOUT}' (default %(default)s)")
    _option(g, "--source-ips", type=_validated(parse_source_ips), default="", local=True,
            help="local addresses to spread connections over, e.g. "
                 "127.0.0.2-127.0.0.9,127.0.1.1 (worker-local)")
    _option(g, "--target-port", type=int, default=0, local=True,
            help="connect to this port of --host's address instead of --host's port; "
                 "0 = --host's (worker-local: each worker its own published port)")
    _option(g, "--steps", type=_validated(parse_steps), default="",
            help="USERS:HOLD per step, e.g. 500:20s,1000:20s; empty = -u/-r as usual")
    _option(g, "--step-spawn-rate", type=float, default=defaults.SPAWN_RATE,
            help="users started (or stopped) per second between steps (default %(default)s)")
    _option(g, "--step-results", default="",
            help="append one JSON line per finished step to this file (master)")
    _option(g, "--schedule", choices=list(defaults.SCHEDULE_CHOICES), default=defaults.SCHEDULE,
            help="closed: next echo after the reply; fixed: echoes at intended times, "
                 "latency from the intended time (coordinated-omission correction)")
    _option(g, "--active-users", type=int, default=defaults.ACTIVE_USERS,
            help="with IdleUser and EchoUser both selected: exactly this many EchoUsers")
    _option(g, "--reconnect", choices=["yes", "no"], default="yes" if defaults.RECONNECT else "no",
            help="after a failure, reconnect after --pace seconds (yes) or stay closed")
    _option(g, "--worker-timeout", type=_at_least(defaults.MIN_WORKER_TIMEOUT_S, float),
            default=defaults.WORKER_TIMEOUT_S, local=True,
            help="seconds without a heartbeat before the master calls a worker lost; give "
                 "the master and every worker the same (default %(default)s)")
    add_churn_arguments(g)
    add_client_arguments(g)


def add_client_arguments(g: Any) -> None:
    """How each user sends, reads and sizes its messages (the user groups'
    ``--groups`` is :func:`loadgen.groups.add_groups_argument`)."""
    _option(g, "--message-size-median", type=_between(0, MAX_MESSAGE_SIZE), default=0,
            help="log-normal message sizes with this median (0 = every message "
                 "--message-size bytes); needs --message-size-max")
    _option(g, "--message-size-max", type=_between(0, MAX_MESSAGE_SIZE), default=0,
            help="the log-normal sizes' largest (its 99.9th percentile; larger draws "
                 "are cut to it)")
    _option(g, "--pace-dist", choices=list(PACE_DISTS), default=PACE_FIXED,
            help="fixed: --pace apart; exponential: random gaps with mean --pace "
                 "(Poisson arrivals per user)")
    _option(g, "--send-chunk", type=_at_least(0, int), default=0,
            help="bytes per send() of a message; 0 = the whole message (default)")
    _option(g, "--send-gap", type=_at_least(0, float), default=0.0,
            help="seconds between the chunks of one message (slowloris: "
                 "--send-chunk 1 --send-gap 0.5)")
    _option(g, "--recv-buffer", type=_recv_buffer, default=0,
            help=f"SO_RCVBUF of each client socket, set before connect; 0 = the "
                 f"kernel's default, else at least {MIN_RECV_BUFFER}")
    _option(g, "--read-chunk", type=_at_least(0, int), default=0,
            help="most bytes per recv() of a reply; 0 = as much as has arrived")
    _option(g, "--read-gap", type=_at_least(0, float), default=0.0,
            help="seconds between the reads of one reply (a slow reader)")
    _option(g, "--so-priority", type=_at_least(0, int), default=0, web_ui=False,
            help="SO_PRIORITY of each client socket, set before connect: the lab's htb "
                 "class of a shaped group (lab/host/tc.py; above 6 needs CAP_NET_ADMIN); "
                 "0 = the kernel's default")


def add_churn_arguments(g: Any) -> None:
    """The options only :class:`~loadgen.users.ChurnUser` reads."""
    _option(g, "--messages-per-connection", type=_at_least(1, int),
            default=DEFAULT_MESSAGES_PER_CONNECTION,
            help="ChurnUser: echoes per connection before it closes (default %(default)s)")
    _option(g, "--arrival-rate", type=_at_least(0, float), default=DEFAULT_ARRIVAL_RATE,
            help="ChurnUser: new connections per second for the whole load (open model: "
                 "an arrival finding no free user is dropped); 0 = each user reconnects "
                 "as soon as it closed (default %(default)s)")


def _option(group: Any, *flags: str, web_ui: bool = True, local: bool = False,
            **kwargs: Any) -> None:
    """``local``: worker-local (:func:`worker_local`), and so not in the web UI,
    whose form the master applies to every worker."""
    if local:
        kwargs["action"] = _WorkerLocal
    action = group.add_argument(*flags, **kwargs)
    if local:
        _STARTED_WITH[action.dest] = action.default
    action.include_in_web_ui = web_ui and not local
    action.is_secret = False
    action.is_required = False
    action.is_multiple = False


@dataclass(frozen=True)
class LoadOptions:
    """The per-connection settings, read from ``parsed_options`` when a user starts
    (so values changed in the web UI, or sent by the master, apply)."""
    messages_per_connection: int = DEFAULT_MESSAGES_PER_CONNECTION  # ChurnUser's two
    arrival_rate: float = DEFAULT_ARRIVAL_RATE

    message_size: int = defaults.MESSAGE_SIZE
    pace_s: float = defaults.PACE_S
    message_size_median: int = 0  # 0: every message is message_size bytes
    message_size_max: int = 0
    pace_dist: str = PACE_FIXED
    send_chunk: int = 0  # 0: the whole message in one send()
    send_gap_s: float = 0.0
    recv_buffer: int = 0  # 0: the kernel's default SO_RCVBUF
    read_chunk: int = 0  # 0: as much as has arrived
    read_gap_s: float = 0.0
    so_priority: int = 0  # 0: the default; lab/host/tc.py: a shaped group's htb class
    connect_timeout_s: float = defaults.CONNECT_TIMEOUT_S
    io_timeout_s: float = defaults.IO_TIMEOUT_S
    schedule: str = defaults.SCHEDULE
    reconnect: bool = defaults.RECONNECT

    @classmethod
    def from_parsed(cls, parsed: Any) -> LoadOptions:
        if parsed is None:
            return cls()
        return cls(
            message_size=max(1, int(parsed.message_size)),
            pace_s=max(0.0, float(parsed.pace)),
            connect_timeout_s=float(parsed.connect_timeout),
            io_timeout_s=float(parsed.io_timeout),
            schedule=str(parsed.schedule),
            reconnect=str(parsed.reconnect) != "no",
            messages_per_connection=max(1, int(getattr(parsed, "messages_per_connection",
                                                       DEFAULT_MESSAGES_PER_CONNECTION))),
            arrival_rate=max(0.0, float(getattr(parsed, "arrival_rate", DEFAULT_ARRIVAL_RATE))),
            **{attr: conv(getattr(parsed, key, getattr(cls, attr)))
               for key, (attr, conv) in CLIENT_KEYS.items()},
        )

    @property
    def before_connect(self) -> tuple[tuple[int, int, int], ...]:
        """Socket options set before ``connect()``: ``SO_RCVBUF`` (the window
        scale is agreed in the SYN) and ``SO_PRIORITY`` (lab/host/tc.py: a
        shaped group's htb class, its link, for every packet from the SYN on)."""
        return tuple((socket.SOL_SOCKET, option, value) for option, value in
                     ((socket.SO_RCVBUF, self.recv_buffer),
                      (socket.SO_PRIORITY, self.so_priority)) if value)

    @property
    def sizes_vary(self) -> bool:
        return self.message_size_median > 0

    @property
    def largest_message(self) -> int:
        """The buffers' size: every message fits."""
        return max(self.message_size_max, self.message_size_median) if self.sizes_vary \
            else self.message_size

    @property
    def size_sigma(self) -> float:
        """The log-normal's sigma: ``max`` at ``LOGNORMAL_MAX_Z`` sigmas above the median."""
        if not self.sizes_vary or self.largest_message <= self.message_size_median:
            return 0.0
        return math.log(self.largest_message / self.message_size_median) / LOGNORMAL_MAX_Z


# parsed option (and group key) -> (LoadOptions attribute, conversion)
CLIENT_KEYS: dict[str, tuple[str, Any]] = {
    "message_size_median": ("message_size_median", int),
    "message_size_max": ("message_size_max", int),
    "pace_dist": ("pace_dist", str),
    "send_chunk": ("send_chunk", int),
    "send_gap": ("send_gap_s", float),
    "recv_buffer": ("recv_buffer", int),
    "read_chunk": ("read_chunk", int),
    "read_gap": ("read_gap_s", float),
    "so_priority": ("so_priority", int),
}


def split_host(host: str | None) -> tuple[str, int]:
    """``tcp://H:P`` (or ``H:P``) -> ``(H, P)``."""
    if not host:
        raise ValueError("no target: pass --host tcp://HOST:PORT")
    rest = host.split("://", 1)[1] if "://" in host else host
    name, sep, port = rest.rstrip("/").rpartition(":")
    if not sep or not port.isdigit():
        raise ValueError(f"{host!r} is not tcp://HOST:PORT")
    return name.strip("[]"), int(port)


@lru_cache(maxsize=64)
def target_address(host: str, allow_external: bool = False) -> tuple[str, int]:
    """Resolve ``--host`` once and refuse anything outside loopback and the
    lab's 198.18.0.0/15 network (unless ``allow_external``)."""
    name, port = split_host(host)
    family, _, _, _, sockaddr = socket.getaddrinfo(name, port, type=socket.SOCK_STREAM)[0]
    addr = sockaddr[0]
    if not allow_external and not is_safe_target(addr):
        raise ValueError(
            f"refusing to send load to {addr} ({host}): only {SAFE_TARGETS_TEXT} "
            f"is allowed; set {ALLOW_EXTERNAL_TARGETS}=1 to override"
        )
    return sockaddr[0], port
