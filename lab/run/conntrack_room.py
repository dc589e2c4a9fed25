"""Room in the connection-tracking table before a model starts.

Where netfilter's conntrack is loaded (Docker's NAT rules load it), every
TCP connection in a network namespace takes an entry, loopback included,
and a closed one keeps it for ``nf_conntrack_tcp_timeout_time_wait``
(120 s) after its FIN. Once a namespace holds ``nf_conntrack_max`` entries
the kernel drops new SYNs ("nf_conntrack: table full, dropping packet"):
the clients' connects time out and are retried, and the step that follows
reads as the server's retransmissions and missed SLO although the server
never saw those SYNs. A model that refuses at its wall (epoll at EMFILE
accepts and closes every connection it cannot keep, and the refused users
reconnect every second) leaves hundreds of thousands of such entries, so
the next model, or the next run started within two minutes, met a full
table (c100k, 2026-12-03: 840 of epoll-reuseport's first 1,000 connects
timed out; 2026-12-04: 8,332 of 10,000 held in a second run back to back).

So before a model whose connections share this process's namespace (the
local backend) starts, :func:`wait_for_room` waits, with a line every
``SAY_EVERY_S``, until the table has room for the model's top step, for at
most the TIME_WAIT timeout and a little: entries of other states (an
established connection keeps its entry for days) do not expire that soon,
and then the model starts anyway, and the line says so.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from lab.host.doctor import conntrack_max
from lab.run.kernel import conntrack_count

TIME_WAIT_TIMEOUT = Path("/proc/sys/net/netfilter/nf_conntrack_tcp_timeout_time_wait")
DEFAULT_TIME_WAIT_S = 120.0
SLACK_S = 10.0  # beyond the TIME_WAIT timeout: the kernel's garbage collector runs late
SAY_EVERY_S = 15.0
POLL_S = 1.0


def time_wait_s(path: Path = TIME_WAIT_TIMEOUT) -> float:
    try:
        return float(path.read_text())
    except (OSError, ValueError):
        return DEFAULT_TIME_WAIT_S


def wait_for_room(need: int, say: Callable[[str], None], *,
                  count: Callable[[], int | None] = conntrack_count,
                  most: Callable[[], int | None] = conntrack_max,
                  timeout_s: float | None = None,
                  clock: Callable[[], float] = time.monotonic,
                  sleep: Callable[[float], None] = time.sleep) -> float:
    """Wait until ``need`` more entries fit in the conntrack table; the
    seconds waited. No wait when conntrack is not loaded or has room."""
    limit, used = most(), count()
    if not limit or used is None or limit - used >= need:
        return 0.0
    timeout_s = time_wait_s() + SLACK_S if timeout_s is None else timeout_s
    start = clock()
    say(f"  conntrack: {used:,} of {limit:,} entries in use, {need:,} needed for the "
        f"top step (closed connections keep theirs {time_wait_s():.0f} s); waiting up to "
        f"{timeout_s:.0f} s for them to expire, or the kernel would drop SYNs")
    said = start
    while True:
        sleep(POLL_S)
        now, used = clock(), count()
        if used is None or limit - used >= need:
            say(f"  conntrack: room for {need:,} after {now - start:.0f} s")
            return now - start
        if now - start >= timeout_s:
            say(f"  conntrack: still {used:,} of {limit:,} entries in use after "
                f"{now - start:.0f} s; starting anyway: connects may time out while the table "
                f"is full (sysctl -w net.netfilter.nf_conntrack_max=N raises it)")
            return now - start
        if now - said >= SAY_EVERY_S:
            said = now
            say(f"  conntrack: {used:,} of {limit:,} entries in use ({now - start:.0f} s)")
