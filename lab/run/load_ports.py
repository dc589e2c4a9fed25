"""The load's own sockets, read in the load's network namespace(s): TIME_WAIT
and the source ports in use toward the server.

A connection's client end holds a source port from
``net.ipv4.ip_local_port_range`` (28,232 ports by default) for one source
address and one server ip:port. The end that closes first (a churn client
always does) keeps its socket in TIME_WAIT for 60 s, and the port with it:
at 1,000 connects/s a single source address would need 60,000 ports, more
than the range has, and ``connect()`` then fails with EADDRNOTAVAIL — the
client's limit, not the server's (lab/run/verdict.py). Each row gets, over
its step:

- ``load_time_wait``: the most TIME_WAIT sockets toward the server's port
  seen in the load's namespaces at once;
- ``load_ports_max``: the most source ports one source address had in use
  toward the server's port (every state but LISTEN: connecting, held and
  TIME_WAIT alike), the busiest address of all.

Where the load's sockets are: on the local backend this machine's namespace
(``/proc/net``; the server's end of each connection is there too, told apart
by its local port); on Docker each worker container's namespace
(``/proc/<pid>/net``), readable when its daemon is this machine's. Each
namespace's addresses are its own (two containers may both use 127.0.0.1),
so a source address is counted per namespace. Nowhere readable: the cells
stay empty.

Reading ``tcp``/``tcp6`` costs the lab CPU in proportion to every socket of
the namespace (~0.3 s at 200,000 sockets here), so a reading spaces the next
out to ten times its duration and at least ``MIN_INTERVAL_S``: under a tenth
of a core, whatever the load.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from pathlib import Path

LISTEN, TIME_WAIT = b"0A", b"06"
MIN_INTERVAL_S = 1.0
SPACING = 10  # the next reading waits this many times the last one's duration


def read(nets: Iterable[Path], port: int) -> tuple[int, int] | None:
    """(TIME_WAIT sockets, most source ports one address uses) toward ``port``
    over the namespaces ``nets``; None when none could be read."""
    suffix = f":{port:04X}".encode()
    time_wait, busiest, read_any = 0, 0, False
    for ns, net in enumerate(nets):
        per_address: dict[tuple[int, bytes], int] = {}
        for table in ("tcp", "tcp6"):
            try:
                with open(net / table, "rb") as f:
                    next(f, None)
                    for line in f:
                        fields = line.split(None, 4)
                        if len(fields) < 4 or not fields[2].endswith(suffix):
                            continue
                        state = fields[3]
                        if state == LISTEN:
                            continue
                        if state == TIME_WAIT:
                            time_wait += 1
                        key = (ns, fields[1].rpartition(b":")[0])
                        per_address[key] = per_address.get(key, 0) + 1
                read_any = True
            except OSError:
                continue
        busiest = max([busiest, *per_address.values()])
    return (time_wait, busiest) if read_any else None


class LoadPorts:
    """The load's sockets sampled over time, so a row gets its step's most."""

    def __init__(self, nets: list[Path], port: int,
                 clock: Callable[[], float] = time.perf_counter):
        self.nets, self.port, self.clock = nets, port, clock
        self.samples: list[tuple[float, int, int]] = []
        self.next_at = 0.0

    def sample(self, now: float) -> None:
        if not self.nets or now < self.next_at:
            return
        began = self.clock()
        value = read(self.nets, self.port)
        took = self.clock() - began
        self.next_at = now + max(MIN_INTERVAL_S, SPACING * took)
        if value is not None:
            self.samples.append((now, *value))

    def step(self, t_start: float | None, t_end: float) -> dict[str, int | None]:
        """The step's most TIME_WAIT sockets and busiest source address."""
        seen = [s for s in self.samples if (t_start is None or s[0] >= t_start) and s[0] <= t_end]
        return {"load_time_wait": max((s[1] for s in seen), default=None),
                "load_ports_max": max((s[2] for s in seen), default=None)}
