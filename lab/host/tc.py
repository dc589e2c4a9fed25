"""Network conditions on the load side's egress (``load.network``), with ``tc``.

How the kernel shapes one group and not another. On the load side's egress
interface the lab puts one htb qdisc (handle ``1ab0:``, the lab's) with a
class per shaped group. Each shaped group's client sockets carry their
class's id as their priority (``SO_PRIORITY`` = ``0x1ab0000N``, set by the
load generator before ``connect()``; a priority above 6 needs
``CAP_NET_ADMIN``), every packet a socket sends carries it (``skb->priority``,
ACKs included), and htb puts a packet whose priority names one of its leaf
classes straight into that class (``htb_classify``), before any filter. So no
classifier module is needed: ``cls_fw`` with ``SO_MARK`` would be the usual
way, but kernels lack it (this one has neither fw nor u32's ``match mark``:
``CONFIG_CLS_U32_MARK`` unset makes u32 *ignore* the mark and match every
packet). Packets of any other priority, the server's replies and every
other process's traffic included, are htb's *direct* packets (``default 0``):
dequeued first and never shaped. A class's ``rate`` (= its ``ceil``) is the
group's link: its users share it. ``delay`` and ``loss`` are a netem qdisc
under the class (one way: the client's packets; the replies are not
delayed). htb holds the packets beyond the rate in its queue, so TCP sees a
slow link (a growing RTT), not drops.

Where: ``lo`` on the local backend (clients and servers share it; only the
group's packets are shaped), each worker container's ``eth0`` on Docker (the
qdisc lives in the container's network namespace and goes with it), the
test host's veth in ``scripts/testhosts``. Whatever the lab adds it removes
at teardown, on Ctrl-C and on failure too (:meth:`Shaper.remove`); a root
qdisc on ``lo`` left behind would serialize every later run's loopback
traffic, so ``apply`` refuses a device that already has a root qdisc of any
kind and ``run-lab clean`` removes a ``1ab0:`` one whose run is gone.

netem (``sch_netem``) is a separate module that some kernels lack (this
machine's has htb and tbf, no netem): :func:`netem_missing` asks the kernel
by adding one in a scratch network namespace, and :func:`netem_refusals`
turns a scenario's ``delay``/``loss`` into exit-2 messages before anything
starts.
"""

from __future__ import annotations

import errno
import os
import socket
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from lab.errors import BackendError
from lab.scenario.network_values import describe
from lab.scenario.types import LoadSpec, NetworkSpec, Scenario

HANDLE = "1ab0"  # the lab's root qdisc handle: how a leftover is recognised as the lab's
UNSHAPED_RATE_BPS = 10_000_000_000  # a class with delay/loss only: rate "unlimited"
DIRECT_QLEN = 10000  # htb's queue of unclassified (unshaped) packets
TC_TIMEOUT_S = 10.0

Runner = Callable[[Sequence[str]], subprocess.CompletedProcess]


def run_tc(argv: Sequence[str]) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=TC_TIMEOUT_S,
                          check=False)


@dataclass(frozen=True)
class ShapedClass:
    """One shaped link: the group it is for (None: the whole load), its htb
    minor, and what it does to the group's packets."""

    group: str | None
    minor: int
    spec: NetworkSpec

    @property
    def priority(self) -> int:
        """The group's sockets' SO_PRIORITY: the class id ``1ab0:N`` as a number."""
        return (int(HANDLE, 16) << 16) | self.minor


def shaped_classes(load: LoadSpec) -> tuple[ShapedClass, ...]:
    """A class per group with a network (its own, else the load's); without
    groups, one class for the whole load."""
    if not load.groups:
        return (ShapedClass(None, 1, load.network),) if load.network else ()
    return tuple(ShapedClass(g.name, i + 1, g.network or load.network)
                 for i, g in enumerate(load.groups) if g.network or load.network)


def priority_of(load: LoadSpec, group: str | None = None) -> int:
    """The SO_PRIORITY of ``group``'s sockets (the whole load's: None); 0 = unshaped."""
    return next((c.priority for c in shaped_classes(load) if c.group == group), 0)


def shaping_summary(load: LoadSpec) -> str:
    """``slow: rate 500kbit, delay 50ms; fast: rate 1mbit`` (or the whole load's)."""
    return "; ".join(f"{c.group}: {describe(c.spec)}" if c.group else describe(c.spec)
                     for c in shaped_classes(load))


def setup_commands(dev: str, classes: Sequence[ShapedClass]) -> list[list[str]]:
    """The tc command lines that shape ``classes`` on ``dev``'s egress: no
    filter (a packet's priority is its class)."""
    root = f"{HANDLE}:"
    cmds = [["tc", "qdisc", "add", "dev", dev, "root", "handle", root, "htb",
             "direct_qlen", str(DIRECT_QLEN)]]
    for c in classes:
        rate = f"{c.spec.rate_bps or UNSHAPED_RATE_BPS}bit"
        classid = f"{HANDLE}:{c.minor:x}"
        quantum = min(max((c.spec.rate_bps or UNSHAPED_RATE_BPS) // 80, 1514), 200000)
        cmds.append(["tc", "class", "add", "dev", dev, "parent", root, "classid", classid,
                     "htb", "rate", rate, "ceil", rate, "quantum", str(quantum)])
        if c.spec.needs_netem:
            netem = ["tc", "qdisc", "add", "dev", dev, "parent", classid,
                     "handle", f"{c.minor:x}:", "netem"]
            if c.spec.delay_s is not None:
                netem += ["delay", f"{c.spec.delay_s * 1e6:.0f}us"]
            if c.spec.loss_pct is not None:
                netem += ["loss", f"{c.spec.loss_pct:g}%"]
            cmds.append(netem)
    return cmds


def remove_command(dev: str) -> list[str]:
    """Deleting the root qdisc takes its classes, filters and netem children with it."""
    return ["tc", "qdisc", "del", "dev", dev, "root", "handle", f"{HANDLE}:"]


def root_qdisc(dev: str, run: Runner = run_tc, prefix: Sequence[str] = ()) -> str:
    """``tc qdisc show dev DEV root`` (its first line), e.g. ``qdisc noqueue 0: root ...``."""
    done = run([*prefix, "tc", "qdisc", "show", "dev", dev, "root"])
    if done.returncode:
        raise BackendError(f"tc cannot read {dev}'s qdisc: {(done.stderr or '').strip()}")
    return (done.stdout or "").strip().splitlines()[0] if (done.stdout or "").strip() else ""


def is_lab_qdisc(line: str) -> bool:
    return f"qdisc htb {HANDLE}: root" in line


def is_default_qdisc(line: str) -> bool:
    """What a device has when nobody added a root qdisc: none, noqueue, or the
    kernel's default (pfifo_fast, fq_codel, mq) at handle ``0:``."""
    return not line or " 0: root" in line


class Shaper:
    """The lab's qdisc on one device: ``apply()`` once, ``remove()`` always
    (idempotent; it removes only the ``1ab0:`` root, never another's).
    ``prefix`` runs tc elsewhere: ``ip netns exec NS`` (a test host)."""

    def __init__(self, dev: str, classes: Sequence[ShapedClass], *, run: Runner = run_tc,
                 prefix: Sequence[str] = (), where: str = "") -> None:
        self.dev, self.classes, self.run = dev, tuple(classes), run
        self.prefix, self.where = tuple(prefix), where or dev
        self.applied = False

    def apply(self) -> list[list[str]]:
        """Add the qdisc, classes and filters; the commands run. A device that
        already has a root qdisc is refused (a concurrent run's, or a leftover)."""
        current = root_qdisc(self.dev, self.run, self.prefix)
        if not is_default_qdisc(current):
            whose = ("another iolab run's, or one left behind (`run-lab clean` removes it "
                     "when its run is gone)") if is_lab_qdisc(current) else "not the lab's"
            raise BackendError(f"load.network: {self.where} already has a root qdisc "
                               f"({current}), {whose}; the lab shapes only a device without "
                               f"one. Remove it with `tc qdisc del dev {self.dev} root` if "
                               "nothing needs it")
        cmds = setup_commands(self.dev, self.classes)
        self.applied = True  # from the first command on, remove() has something to do
        for argv in cmds:
            done = self.run([*self.prefix, *argv])
            if done.returncode:
                problem = (done.stderr or done.stdout or "").strip()
                self.remove()
                raise BackendError(f"load.network on {self.where}: `{' '.join(argv)}` failed: "
                                   f"{problem}")
        return cmds

    def remove(self) -> None:
        """Delete the lab's root qdisc if it is there; raise if it stays."""
        if not self.applied:
            return
        current = root_qdisc(self.dev, self.run, self.prefix)
        if is_lab_qdisc(current):
            done = self.run([*self.prefix, *remove_command(self.dev)])
            if done.returncode:
                raise BackendError(f"could not remove the lab's qdisc from {self.where}: "
                                   f"{(done.stderr or '').strip()}; run `tc qdisc del dev "
                                   f"{self.dev} root`")
        self.applied = False


def remove_leftover(dev: str, run: Runner = run_tc) -> str:
    """``run-lab clean``: delete the lab's root qdisc from ``dev`` (a run killed
    with SIGKILL could not); what was done, in words."""
    try:
        current = root_qdisc(dev, run)
        if not is_lab_qdisc(current):
            return "no qdisc of the lab's"
        done = run(remove_command(dev))
    except (BackendError, OSError, subprocess.TimeoutExpired) as exc:
        return f"not checked ({exc})"
    return ("removed the lab's qdisc (1ab0:)" if done.returncode == 0 else
            f"the lab's qdisc not removed: {(done.stderr or '').strip()}")


@lru_cache(maxsize=1)
def netem_missing() -> str | None:
    """Why this kernel cannot add a netem qdisc, or None when it can. Asked
    of the kernel itself: a netem qdisc on ``lo`` of a scratch network
    namespace (``unshare --net``; the kernel loads ``sch_netem`` on demand
    when it is a module), so no real device is touched."""
    if Path("/sys/module/sch_netem").exists():
        return None
    try:
        done = subprocess.run(["unshare", "--net", "tc", "qdisc", "add", "dev", "lo", "root",
                               "netem", "delay", "1ms"], capture_output=True, text=True,
                              timeout=TC_TIMEOUT_S, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"the lab could not ask the kernel ({exc})"
    if done.returncode == 0:
        return None
    said = (done.stderr or "").strip().splitlines()
    if any("unknown" in line.lower() for line in said):
        return "this kernel has no netem qdisc (sch_netem; CONFIG_NET_SCH_NETEM is not set)"
    return f"the lab could not add a netem qdisc in a scratch namespace: {' '.join(said)}"


def _network_fields(load: LoadSpec) -> list[tuple[str, NetworkSpec]]:
    out = [("load.network", load.network)] if load.network else []
    out += [(f"load.groups[{i}].network", g.network) for i, g in enumerate(load.groups)
            if g.network]
    return out


def netem_refusals(scenario: Scenario, missing: str | None) -> list[str]:
    """One message per ``delay``/``loss`` the kernel cannot apply (``missing``:
    :func:`netem_missing`'s reason), naming the file and the field."""
    if missing is None:
        return []
    where = f"{scenario.source_path}: " if scenario.source_path else ""
    out = []
    for path, spec in _network_fields(scenario.load):
        for key, value in (("delay", spec.delay_s), ("loss", spec.loss_pct)):
            if value is not None:
                out.append(f"{where}{path}.{key}: needs netem, and {missing}; remove delay and "
                           "loss (rate works without it: htb), or run on a kernel with netem")
    return out


def priority_refusal() -> str | None:
    """Why this process cannot give a socket a shaped class's priority (the
    local backend's workers are its children, with its privileges), or None."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_PRIORITY, ShapedClass(None, 1,
                                                                           NetworkSpec()).priority)
    except OSError as exc:
        if exc.errno in (errno.EPERM, errno.EACCES):
            return (f"load.network puts each shaped group's sockets in its htb class "
                    f"(SO_PRIORITY above 6), which needs CAP_NET_ADMIN; run as root "
                    f"(uid {os.geteuid()} now)")
        return f"SO_PRIORITY: {exc}"
    finally:
        sock.close()
    return None
