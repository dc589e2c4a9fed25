"""When an EchoUser sends, and where its latency clock starts.

*Closed* (``--schedule closed``): one echo at a time, latency from the
actual send. The next echo is due ``--pace`` seconds after the previous one
was *due*, as long as that time is still ahead when the previous one is sent;
if it has passed (the send, or the reply before it, was a pace or more late),
it is due ``--pace`` seconds after the send: never a burst of catch-up sends.
This is what a naive client measures, and it lies under overload: while the
server stalls, the client sends nothing, so the stall shows up as *one* slow
sample instead of all the samples that should have been taken during it
("coordinated omission", Gil Tene).

Why from the due time and not from the send: a stall of the generator's own
event loop (a ramp's spawning, a long callback) holds back every send due in
it, and they all go out together when it ends. Counted from the send, their
next echoes are due together too, and the one after, for good: each stall
merges users into a cluster that nothing splits again. 15,000 users spawned
at 2,000/s ended their ramp in ~8 such clusters a second, hundreds of sends
due in the same millisecond, and the server queued them (benchmarks/README.md,
loadgen_fidelity). Counted from the due time, a late send leaves the user's
phase where it was.

*Fixed* (``--schedule fixed``, open loop, as wrk2 does): echo *k* is due at
``t0 + k * pace`` whatever happened before, and its latency runs from that
intended time. After a 3 s stall at pace 1 s the three overdue echoes go out
back to back and report about 3 s, 2 s and 1 s: the stall is counted as
the users of the server experienced it.

``--pace-dist exponential`` draws each gap from an exponential distribution
with mean ``--pace`` (the user's own seeded RNG): each user's sends are then a
Poisson process, so the server sees bursts and lulls instead of a metronome,
and the load as a whole is Poisson at any number of users.

The first echo of a connection is due at a random phase within one pace
interval, so users spawned in one burst do not send in lockstep.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from loadgen.options import PACE_EXPONENTIAL


def pace_gaps(pace_s: float, dist: str,
              rng: random.Random | Callable[[], random.Random]) -> Callable[[], float]:
    """The gap before each next send: ``pace_s`` each time, or exponential draws
    with mean ``pace_s``. ``rng`` may be a callable that makes the RNG: it is
    called only for exponential gaps."""
    if dist == PACE_EXPONENTIAL and pace_s > 0:
        rate = 1.0 / pace_s
        draw = (rng if isinstance(rng, random.Random) else rng()).expovariate
        return lambda: draw(rate)
    return lambda: pace_s


class Schedule:
    __slots__ = ("pace", "fixed", "due", "gap")

    def __init__(self, pace_s: float, fixed: bool, now: float,
                 gap: Callable[[], float] | None = None) -> None:
        self.pace = pace_s
        self.gap = gap if gap is not None else (lambda: pace_s)
        # An open loop needs a rate: at pace 0 "intended times" would all be t0.
        self.fixed = fixed and pace_s > 0
        self.due = now + random.random() * pace_s

    def origin(self, now: float) -> float | None:
        """Where the latency of an echo sent ``now`` starts (None: at the send)."""
        return min(self.due, now) if self.fixed else None

    def advance(self, sent_at: float) -> None:
        """Called once per echo sent (successful or not) at ``sent_at``."""
        due = self.due + self.gap()
        if not self.fixed and due <= sent_at:  # a pace or more behind: from the send
            due = sent_at + (due - self.due)
        self.due = due
