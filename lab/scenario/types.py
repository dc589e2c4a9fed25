"""Typed, frozen scenario values: what every part downstream of
``lab/scenario/loader.py`` sees. Nothing downstream ever sees a raw YAML dict.

``lab/scenario/loader.py`` builds these from YAML and validates them once; backends,
the run loop, the report and the capacity plan only read them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from contract import defaults

Nofile = int | Literal["max"]


@dataclass(frozen=True)
class Limits:
    """Per-server limits. ``nofile="max"`` means the hard limit the host grants."""

    nofile: Nofile = "max"
    backlog: int = defaults.BACKLOG
    # Namespaced sysctls, applied per container (Docker only; the local
    # backend records them as "could not apply").
    sysctls: tuple[tuple[str, str], ...] = ()
    memory: str | None = None  # e.g. "1g" (Docker; locally a memory cgroup, lab/backends/cgroup.py)
    cpuset: str | None = None  # e.g. "0" (Docker only)


@dataclass(frozen=True)
class ServerSpec:
    """One server to compare: a built-in model, or a custom echo server."""

    name: str  # the row label in results; defaults to the model name
    model: str | None = None  # built-in model name (one of contract.models.MODELS)
    # A custom server: an image (Docker) and/or a command (local), and its port.
    image: str | None = None
    command: tuple[str, ...] | None = None
    port: int | None = None
    limits: Limits = field(default_factory=Limits)
    on_fd_limit: str = defaults.ON_FD_LIMIT  # one of defaults.ON_FD_LIMIT_CHOICES
    work_us: int = defaults.WORK_US  # CPU burnt per message
    block_us: int = defaults.BLOCK_US  # a wait without CPU per message (a sleep)
    nodelay: bool = defaults.NODELAY  # TCP_NODELAY on accepted sockets; False keeps Nagle
    workers: int | None = None  # threadpool size (None: the server's default)
    # SO_REUSEPORT listening processes (event-driven models); "auto": sized by the
    # backend from the top step and the nofile it grants (lab/host/ceiling.py).
    processes: int | Literal["auto"] = defaults.PROCESSES
    host: str = "local"  # placement: a name from Scenario.hosts

    @property
    def is_custom(self) -> bool:
        return self.model is None


@dataclass(frozen=True)
class Step:
    connections: int  # target users (each holds one connection)
    hold_s: float  # seconds held at this level after the ramp


class SizeDistribution(int):
    """``message_size: {median: 512, max: 65536}``: log-normal sizes per message,
    the max their 99.9th percentile (larger draws cut to it). As an int it is the
    median: a reader that wants one size (the live view's echo rate) gets that."""

    max: int

    def __new__(cls, median: int, max: int) -> SizeDistribution:
        obj = super().__new__(cls, median)
        obj.max = max
        return obj

    @property
    def median(self) -> int:
        return int(self)

    def __eq__(self, other: object) -> bool:
        return (isinstance(other, SizeDistribution) and int(self) == int(other)
                and self.max == other.max)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash((int(self), self.max))

    def __repr__(self) -> str:
        return f"SizeDistribution(median={int(self)}, max={self.max})"


class ExponentialPace(float):
    """``pace: {mean: 1s}``: exponential gaps with this mean (Poisson sends per
    user). As a float it is the mean pace."""

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ExponentialPace) and float(self) == float(other)

    def __ne__(self, other: object) -> bool:
        return not self == other

    def __hash__(self) -> int:
        return hash(("exponential", float(self)))

    def __repr__(self) -> str:
        return f"ExponentialPace({float(self)!r})"


@dataclass(frozen=True)
class NetworkSpec:
    """``load.network`` (or a group's): the link the load side's packets leave
    by, emulated with ``tc`` on its egress (lab/host/tc.py). ``rate_bps`` is
    bits per second through an htb class; ``delay_s`` and ``loss_pct`` need
    netem (sch_netem) in the load side's kernel. None: not shaped that way."""

    delay_s: float | None = None
    loss_pct: float | None = None  # percent of packets dropped, 0 < loss <= 100
    rate_bps: int | None = None

    @property
    def needs_netem(self) -> bool:
        return self.delay_s is not None or self.loss_pct is not None


@dataclass(frozen=True)
class GroupSpec:
    """One of ``load.groups``: a share of the users (``weight``) with its own
    user kind and load keys; None keeps the load's own."""

    name: str
    weight: int = 1
    user: str | None = None
    message_size: int | None = None
    pace_s: float | None = None
    send_chunk: int | None = None
    send_gap_s: float | None = None
    recv_buffer: int | None = None
    read_chunk: int | None = None
    read_gap_s: float | None = None
    network: NetworkSpec | None = None  # None: the load's network (if any)


@dataclass(frozen=True)
class LoadSpec:
    user: str = defaults.USER_ECHO  # one of defaults.USER_CHOICES
    active_users: int = defaults.ACTIVE_USERS  # with user=idle: EchoUsers among the idle ones
    # with user=churn: echoes per connection; spawn_rate is then the whole load's arrivals/s
    messages_per_connection: int = defaults.MESSAGES_PER_CONNECTION
    message_size: int = defaults.MESSAGE_SIZE
    pace_s: float = defaults.PACE_S
    spawn_rate: float = defaults.SPAWN_RATE  # users started per second, across all workers
    steps: tuple[Step, ...] = ()
    workers: int | None = None  # None: derived from the largest step
    schedule: str = defaults.SCHEDULE  # one of defaults.SCHEDULE_CHOICES
    connect_timeout_s: float = defaults.CONNECT_TIMEOUT_S
    io_timeout_s: float = defaults.IO_TIMEOUT_S
    worker_timeout_s: float = defaults.WORKER_TIMEOUT_S  # silence before a worker is lost
    repeat: int = 1  # passes over all models, interleaved (lab/run/loop.py Runner.run)
    send_chunk: int = 0  # bytes per send(); 0 = the whole message
    send_gap_s: float = 0.0  # pause between the chunks of one message
    recv_buffer: int = 0  # the client socket's SO_RCVBUF; 0 = the kernel's default
    read_chunk: int = 0  # most bytes per recv(); 0 = as much as has arrived
    read_gap_s: float = 0.0  # pause between the reads of one reply
    groups: tuple[GroupSpec, ...] = ()  # user groups; () = one kind of user
    network: NetworkSpec | None = None  # the load side's link (each group's unless it has one)


@dataclass(frozen=True)
class SLO:
    p99_ms: float = 100.0
    error_rate: float = 0.01  # the hold's failures / its attempts
    # Optional connect-phase bounds (none by default): a step that misses one
    # gets a connect finding; the hold verdict does not change.
    connect_p99_ms: float | None = None
    connect_error_rate: float | None = None  # failed connect attempts / attempts


@dataclass(frozen=True)
class HostSpec:
    """A Docker host. ``address`` is how other hosts reach its published ports."""

    name: str
    endpoint: str = "local"  # "local" (the default client) or unix:// tcp:// ssh://
    address: str = "127.0.0.1"


@dataclass(frozen=True)
class Placement:
    master: str = "local"
    workers: tuple[str, ...] = ("local",)  # workers are spread round-robin over these


@dataclass(frozen=True)
class HostLimits:
    file_max: int | None = None  # fs.file-max wanted on every host
    raise_host_limits: bool = False  # opt-in: the lab may raise host-global sysctls


@dataclass(frozen=True)
class Expectation:
    """What a scenario expects of one server, checked after the run (exit 3 if not met).

    ``limit``: the first limit the server hits (``none``: it hits none);
    ``holds``: the connections it holds within the SLO (the capacity plan's
    figure) are at least this many. The figures of one step (``at``: its
    connections, default the top step), of one user group with ``group``
    (groups.csv): ``p99_ms_below``, ``error_rate_at_most``, and
    ``slower_than``: its p99 is at least ``times`` (default 1) that server's.
    """

    server: str
    limit: str | None = None
    holds: int | None = None
    p99_ms_below: float | None = None
    error_rate_at_most: float | None = None
    slower_than: str | None = None
    times: float | None = None
    at: int | None = None
    group: str | None = None


@dataclass(frozen=True)
class Scenario:
    name: str
    servers: tuple[ServerSpec, ...]
    load: LoadSpec
    description: str = ""
    backend: Literal["auto", "docker", "local"] = "auto"
    slo: SLO = field(default_factory=SLO)
    hosts: tuple[HostSpec, ...] = (HostSpec(name="local"),)
    placement: Placement = field(default_factory=Placement)
    host_limits: HostLimits = field(default_factory=HostLimits)
    allow_external_targets: bool = False
    expect: tuple[Expectation, ...] = ()
    # Expectations of servers an override left out (--models, --set servers=...): kept
    # aside, recorded in run.json and listed as not checked; never in the dump.
    expect_not_checked: tuple[Expectation, ...] = ()
    source_path: Path | None = None  # the YAML file it came from

    def host(self, name: str) -> HostSpec:
        for h in self.hosts:
            if h.name == name:
                return h
        raise KeyError(name)

    @property
    def max_connections(self) -> int:
        return max((s.connections for s in self.load.steps), default=0)
