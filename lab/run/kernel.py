"""Kernel evidence per step, read in the server's network namespace.

The server cannot report what the kernel did before it saw a connection: a
SYN dropped because the accept queue was full never reaches ``accept()``.
The kernel counts it (``/proc/net/netstat``, ``TcpExt``):

- ``ListenOverflows`` — a completed handshake found the accept queue
  (``min(backlog, net.core.somaxconn)``) full; ``ListenDrops`` — every SYN or
  ACK dropped on a listener, overflows included. Either growing during a step
  is the evidence for the ``backlog`` limit.
- ``TCPBacklogDrop`` — a segment dropped because the socket's own backlog
  (the softirq-to-user queue) was full; ``TCPTimeouts`` — retransmission
  timers that fired; ``RetransSegs`` (``/proc/net/snmp``, ``Tcp``).

The SYN side, which says why SYNs were dropped when ListenOverflows is 0:
``TCPReqQFullDrop`` — a SYN dropped because the SYN (request) queue was full
and syncookies were off or not allowed; ``TCPReqQFullDoCookies`` — the SYN
queue was full and the kernel answered with a syncookie instead;
``SyncookiesSent``/``SyncookiesRecv``/``SyncookiesFailed`` — cookies sent,
and the ACKs carrying one that validated or did not. A step's ``syn_drops``
is the growth of TCPReqQFullDrop + ListenDrops (ListenDrops already counts
the accept-queue overflows), ``syncookies_sent`` that of SyncookiesSent.

These are namespace-wide counters, so the lab reads them where the server
lives: ``/proc/net`` for the local backend (the host's namespace, shared with
the load generator: its listeners count too, which are few), and
``/proc/<container pid>/net`` for a container on this machine's daemon; on a
remote daemon the lab cannot read them and the cells stay empty (never a
made-up 0). Socket counts by state are read at each step's end from
``tcp``/``tcp6`` — on the local backend both ends of every connection are in
the one namespace, so ESTABLISHED counts each connection twice.
"""

from __future__ import annotations

import bisect
from pathlib import Path

NETSTAT_KEYS = {"ListenOverflows": "listen_overflows", "ListenDrops": "listen_drops",
                "TCPBacklogDrop": "tcp_backlog_drop", "TCPTimeouts": "tcp_timeouts",
                "TCPReqQFullDrop": "reqq_full_drop", "TCPReqQFullDoCookies": "reqq_full_cookies",
                "SyncookiesSent": "syncookies_sent", "SyncookiesRecv": "syncookies_recv",
                "SyncookiesFailed": "syncookies_failed"}
# The step's SYN drops: the counters whose growth adds up to ``syn_drops``.
SYN_DROP_KEYS = ("reqq_full_drop", "listen_drops")
SNMP_KEYS = {"RetransSegs": "retrans_segs"}
STATES = {"01": "tcp_estab", "03": "tcp_syn_recv", "06": "tcp_time_wait", "08": "tcp_close_wait"}
CONNTRACK = Path("/proc/sys/net/netfilter/nf_conntrack_count")
# Packets the namespace dropped for want of a conntrack entry (a full table):
# the ``drop`` column of ``<net>/stat/nf_conntrack``, one line per CPU, in hex.
CONNTRACK_DROPS = "conntrack_drops"


def _pairs(path: Path, prefix: str) -> dict[str, int]:
    """``Prefix: names...`` / ``Prefix: values...`` line pairs as a dict."""
    lines = [ln.split() for ln in path.read_text().splitlines() if ln.startswith(prefix)]
    out: dict[str, int] = {}
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        out.update({n: int(v) for n, v in zip(names[1:], values[1:], strict=False)})
    return out


def counters(net: Path) -> dict[str, int] | None:
    """The cumulative counters in ``net`` (a ``/proc/.../net`` dir), or None."""
    try:
        ext = _pairs(net / "netstat", "TcpExt:")
        tcp = _pairs(net / "snmp", "Tcp:")
    except (OSError, ValueError):
        return None
    out = {ours: ext[k] for k, ours in NETSTAT_KEYS.items() if k in ext}
    out.update({ours: tcp[k] for k, ours in SNMP_KEYS.items() if k in tcp})
    drops = conntrack_drops(net)
    if drops is not None:
        out[CONNTRACK_DROPS] = drops
    return out


def conntrack_drops(net: Path) -> int | None:
    """The namespace's conntrack ``drop`` counter summed over CPUs; None where
    conntrack is not loaded. A full table drops the packet that would have
    needed a new entry (a SYN, mostly), so the client retries after 1 s, 3 s...
    while the server never saw it."""
    try:
        lines = (net / "stat" / "nf_conntrack").read_text().split("\n")
        column = lines[0].split().index("drop")
        return sum(int(line.split()[column], 16) for line in lines[1:] if line.strip())
    except (OSError, ValueError, IndexError):
        return None


def socket_states(net: Path) -> dict[str, int] | None:
    """TCP sockets by state (ESTABLISHED, SYN_RECV, TIME_WAIT, CLOSE_WAIT)."""
    found = dict.fromkeys(STATES.values(), 0)
    read = False
    for table in ("tcp", "tcp6"):
        try:
            with open(net / table) as f:
                next(f, None)
                for line in f:
                    fields = line.split()
                    state = STATES.get(fields[3]) if len(fields) > 3 else None
                    if state:
                        found[state] += 1
            read = True
        except OSError:
            continue
    return found if read else None


def conntrack_count(path: Path = CONNTRACK) -> int | None:
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


class KernelSampler:
    """The server namespace's counters over time, so each row gets the
    increase over its step and the socket states at its end."""

    def __init__(self, net: Path | None):
        self.net = net
        self.times: list[float] = []
        self.values: list[dict[str, int]] = []

    def sample(self, now: float) -> None:
        value = counters(self.net) if self.net is not None else None
        if value is not None:
            self.times.append(now)
            self.values.append(value)

    def _at(self, t: float) -> dict[str, int] | None:
        i = bisect.bisect_right(self.times, t)
        return self.values[i - 1] if i else (self.values[0] if self.values else None)

    def step(self, t_start: float | None, t_end: float) -> dict[str, int | None]:
        """Counter increases from ``t_start`` to ``t_end`` and the states now."""
        end = self._at(t_end)
        start = self._at(t_start) if t_start is not None else None
        out: dict[str, int | None] = {}
        for key in (*NETSTAT_KEYS.values(), *SNMP_KEYS.values(), CONNTRACK_DROPS):
            if end is None or start is None or key not in end or key not in start:
                out[key] = None
            else:
                out[key] = max(end[key] - start[key], 0)
        drops = [out.get(k) for k in SYN_DROP_KEYS]
        out["syn_drops"] = None if None in drops else sum(drops)  # type: ignore[arg-type]
        states = socket_states(self.net) if self.net is not None else None
        out.update(states or dict.fromkeys(STATES.values()))
        out["conntrack_count"] = conntrack_count()
        return out
