"""Which evidence names a step's limit, in order.

A step can show several symptoms at once — a server at its descriptor limit
also makes clients fail — so the first source that speaks wins, most direct
first:

1. the server's own ``limit`` event (it saw ``accept()`` fail and said why);
2. the cause of its death (lab/run/death.py), when it died in this step;
3. a lost load worker or master (lab/run/generator.py): the step measured a
   smaller load than planned;
4. replies that were not the bytes sent (``mismatch``);
5. a load-side connect failure (the client's own descriptors or ports, or a
   refused connection: contract ``LOAD_SIDE_LIMITS``), when the load was
   still below its target at the hold's end;
6. the kernel's listen counters (``ListenOverflows``/``ListenDrops`` grew in
   the server's namespace: ``backlog``), when connections were still not
   established at the hold's end.

Steps 5 and 6 are the connect phase's: a connect that failed and was retried
until it got through cost latency, not capacity. When every connection was
made, a full accept queue is a connect-phase *finding* with its evidence
(lab/analysis/connect.py), not a wall at a step that held its target.
7. ``serialized``: see :func:`serialized`.

None of them: the step hit no limit. A step that misses the SLO without one
gets its cause from the analysis (lab/analysis/causes.py).
"""

from __future__ import annotations

from typing import Any

from contract.limits import BACKLOG, MISMATCH, SERIALIZED, TIMEOUT
from lab.results.writer import load_side_limit

# A step is "serialized" when at most this fraction of the connections the
# kernel completed ever got a reply at once (client side: Meter.peak_served
# over peak_connected), and replies timed out.
SERIALIZED_SERVED_FRACTION = 0.5
SERIALIZED_MIN_CONNECTIONS = 4


def serialized(record: dict[str, Any], echoing: int | None = None) -> bool:
    """The server let the kernel complete the handshakes (they wait in its
    accept queue, so the client counts them connected) but served only a few
    connections at a time: the most connections that had an echo back at once
    is at most half of those open, and echoes timed out. The blocking model
    (one connection until it closes) and a fixed thread pool smaller than the
    load both look like this from the client; an event-driven server that is
    merely slow still answers every connection once, so it does not. Only
    echo timeouts count: connects that timed out were never the server's to
    serve (c100k, 2026-12-03: a full conntrack table dropped SYNs and 840
    connect timeouts read as ``serialized`` at 285 of 1,000).

    ``echoing``: how many of the connections send at all (with idle users,
    only the active ones can ever have an echo back; the idle ones must not
    count as unserved)."""
    opened, served = record.get("peak_connected"), record.get("peak_served")
    if isinstance(opened, int) and echoing is not None:
        opened = min(opened, echoing)
    # Replies that timed out, not connects: a SYN the kernel dropped (a full
    # conntrack table, a full queue) times out in connect(), before any server
    # could serve it; "failures" counts those too, "connect_failures" them alone.
    timeouts = (int((record.get("failures") or {}).get(TIMEOUT) or 0)
                - int((record.get("connect_failures") or {}).get(TIMEOUT) or 0))
    if not isinstance(opened, int) or not isinstance(served, int):
        return False
    return (opened >= SERIALIZED_MIN_CONNECTIONS and timeouts > 0
            and served <= SERIALIZED_SERVED_FRACTION * opened)


def short_of_target(record: dict[str, Any]) -> bool:
    """Fewer connections held at the hold's end than the step asked for (a
    record without counts is taken as short: the older rule)."""
    held, target = record.get("connected"), record.get("target_users")
    if not isinstance(held, int) or not isinstance(target, int):
        return True
    return held < target


def step_limit(*, event: str | None, death: str | None, lost: str | None,
               record: dict[str, Any], evidence: dict[str, Any],
               echoing: int | None = None, churn: bool = False) -> str | None:
    """The step's limit from the evidence, in the order of the module docstring.

    ``churn``: the load connects and closes all the time, so its users are
    not held at the hold's end and "short of the target" means nothing; a
    load-side connect failure (the client's ports: EADDRNOTAVAIL) is the
    load's limit whenever it happens, and a full accept queue is what the
    accept rate measures — a connect-phase finding, never ``backlog``."""
    if event:
        return event
    if death:
        return death
    if lost:
        return lost
    if int((record.get("failures") or {}).get(MISMATCH) or 0):
        return MISMATCH
    short = short_of_target(record) and not churn
    side = load_side_limit(record.get("connect_failures"))
    if side and (short or churn):
        return side
    if short and ((evidence.get("listen_overflows") or 0) or (evidence.get("listen_drops") or 0)):
        return BACKLOG  # the kernel dropped handshakes and some never got through
    if serialized(record, echoing):
        return SERIALIZED
    return None
