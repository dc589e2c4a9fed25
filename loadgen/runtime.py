"""What the users of one load process share: the meter, the source addresses,
the capacity guard.

One :class:`Runtime` per Locust ``Environment`` (one per process: the
master, a worker, or a standalone run), created at ``init`` or by whatever
needs it first (a spawn message can arrive before ``init``). Its
*worker-local* options (``--source-ips``, ``--target-port``) are this
process's own values (:func:`loadgen.options.worker_local`), not the ones the
master's spawn messages write into ``parsed_options``.
"""

from __future__ import annotations

import gc
import os
import resource
from typing import Any

from contract.env import ALLOW_EXTERNAL_TARGETS
from loadgen.groups import group_options
from loadgen.limits import CapacityGuard, SocketBudget, ephemeral_ports
from loadgen.meter import Meter
from loadgen.options import LoadOptions, parse_source_ips, target_address, worker_local
from loadgen.tally import Tally

_ATTR = "_iolab_runtime"
# The collector's youngest generation runs after this many net allocations of
# tracked objects (CPython's default: 700). Objects that outlive a wait (most
# likely each wait's waiter, timer and callbacks) keep that count rising, so
# at 8000 paced users the default ran ~28 young
# and ~2.6 middle collections a second, 0.6-1.1 s of every 10 s, the middle
# ones 15-60 ms each: the event loop's lag p99 was 90-245 ms. At 20000 they run
# every ~3 s, ~25 ms each, 0.06-0.1 s of every 10 s, and the lag p99 was
# 22-42 ms (benchmarks/README.md, loadgen_fidelity).
GC_THRESHOLDS = (20_000, 10, 10)


class Runtime:
    def __init__(self, environment: Any) -> None:
        self.environment = environment
        parsed = environment.parsed_options
        # Worker-local: this process's own values, not the master's (loadgen.options).
        self.source_ips = parse_source_ips(worker_local(parsed, "source_ips") or "")
        self.target_port = int(worker_local(parsed, "target_port") or 0)
        self._next_ip = 0
        self.meter = Meter()
        self.budget = SocketBudget.for_this_process()
        self.users = 0
        self.started = 0  # users started so far (each user's RNG seed)
        self._options: LoadOptions | None = None
        self._group_options: dict[str, LoadOptions] = {}
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.guard = CapacityGuard(soft, len(self.source_ips), ephemeral_ports())
        self.lag_probe = None
        self._arrivals = None
        self._tally = None

    def start_lag_probe(self) -> None:
        """Time this process's event loop into the meter, and make the garbage
        collector's pauses rarer (load processes only)."""
        from loadgen.lag import LagProbe  # gevent: only inside Locust

        gc.set_threshold(*GC_THRESHOLDS)
        if self.lag_probe is None:
            self.lag_probe = LagProbe(self.meter)
            self.lag_probe.start()
        if self._tally is None:
            self._tally = Tally(self.environment)
            self._tally.install()

    @property
    def fire(self):
        return self.environment.events.request.fire

    def tally(self) -> Tally | None:
        """Where a new user's successes go (:mod:`loadgen.tally`): the process's
        tally, or None (one ``request`` event each) when another listener wants
        every request or this is not a load process."""
        tally = self._tally
        return None if tally is None or tally.direct else tally

    def options(self, group: dict[str, Any] | None = None) -> LoadOptions:
        """The current options, as one object shared by all users while they
        stay the same (thousands of users, one copy); with a user group's
        spec, those options with the group's overrides."""
        opts = LoadOptions.from_parsed(self.environment.parsed_options)
        if opts != self._options:
            self._options = opts
            self._group_options = {}
        if group is None:
            return self._options
        got = self._group_options.get(group["name"])
        if got is None:
            got = self._group_options[group["name"]] = group_options(self._options, group)
        return got

    def target(self) -> tuple[str, int]:
        """``--host`` resolved and checked; its port replaced by ``--target-port``."""
        allow = os.environ.get(ALLOW_EXTERNAL_TARGETS, "") not in ("", "0")
        address, port = target_address(self.environment.host or "", allow)
        return address, self.target_port or port

    def next_source_ip(self) -> str | None:
        """Round-robin over ``--source-ips``, so each address gets an equal share."""
        if not self.source_ips:
            return None
        ip = self.source_ips[self._next_ip % len(self.source_ips)]
        self._next_ip += 1
        return ip

    @property
    def step_target(self) -> int:
        """The running step's target users (``announce_target`` in
        :mod:`loadgen.steps`, shipped in the spawn messages); 0 = unknown."""
        return int(getattr(self.environment.parsed_options, "step_target", 0) or 0)

    def arrivals(self):
        """The process's churn arrival schedule (:mod:`loadgen.arrivals`), started
        on first use; its rate is read on every tick, so a new ``--arrival-rate``
        or step target applies within a tick."""
        from loadgen.arrivals import Arrivals, share_of_rate  # gevent: only inside Locust

        if self._arrivals is None:
            self._arrivals = Arrivals(self.meter, lambda own: share_of_rate(
                self.options().arrival_rate, own, self.step_target))
        self._arrivals.start()
        return self._arrivals

    def user_started(self, group: str | None = None) -> None:
        self.users += 1
        self.started += 1
        if group is not None:
            self.meter.group(group).users += 1
        self.guard.check(self.users)

    def user_stopped(self, group: str | None = None) -> None:
        self.users -= 1
        if group is not None:
            self.meter.group(group).users -= 1


def runtime(environment: Any) -> Runtime:
    """This environment's runtime (created on first use if ``init`` did not)."""
    rt = environment.__dict__.get(_ATTR)
    if rt is None:
        rt = Runtime(environment)
        setattr(environment, _ATTR, rt)
    return rt
