"""A cost as a function of connections, and the rule that picks its shape.

The capacity plan (lab/analysis/capacity.py) multiplies per-connection and
per-message costs out to far more connections than any step measured, so the
shape of each cost matters as much as its value:

- **CPU per message** is flat for a readiness API that reports only the ready
  descriptors (epoll: ``epoll_wait`` returns the ready list, its cost does not
  grow with the idle ones), but grows with the descriptors a call scans for
  poll and select: every ``poll()`` copies and walks all N ``pollfd``
  entries, so each wake-up, and so each message, costs a + b·N. That holds
  while each wake-up serves about one message; once one walk takes as long
  as the gap between messages, a call returns several ready descriptors and
  the cost per message falls again (poll in ``lab.yaml`` from ~8,000
  connections), and the server's core is full: a ceiling, not a cost
  (lab/analysis/plan_costs.py ``saturated`` keeps such steps out of the fit).
- **CPU per message that falls as the rate grows**, ``a·N^b`` with
  −1 < b < 0: a message that finds the server asleep pays its wake-up
  (the scheduler switching it in, ``epoll_wait`` returning, on a VM the
  idle vCPU's exit to the hypervisor), and the fewer messages a second,
  the more of them do. Measured on this 2-vCPU VM, epoll's hold cost 118
  µs per message at 500 connections (125 messages/s) and 23.5 µs at
  19,000 (4,750/s), on a quiet machine (tests/data/holdout/README.md).
  A power law is the simplest shape that falls without reaching zero
  cost at any N: the CPU of N connections, N·a·N^b, still grows.
- **Memory per connection** is a straight line in N, but the server's RSS
  grows in whole pages and in allocator chunks (see ``line``), so a slope
  drawn from one measured point to another carries the rounding of both.

The rule (``choose``), written out so the plan can say which fit it used:
fit the shapes on the fitted steps (flat: their median, so one step
disturbed by another process on a shared host does not move it; a + b·N:
least squares; a·N^b: least squares of log y on log N), score each by
**leave-one-out**: predict each fitted point from a fit of the others and
take the mean |relative error|. A two-parameter shape is chosen only when
it has at least three points (with two, leaving one out leaves nothing to
fit a slope to), its shape is allowed (a + b·N: b > 0, a line that falls
would reach free messages; a·N^b: −1 < b), and its leave-one-out error is
below the flat fit's and the other shape's. The extra parameter thus has
to earn its place on points it was not fitted on.
"""

from __future__ import annotations

import math
import statistics
from dataclasses import dataclass

FLAT = "flat"
LINEAR = "a + b·N"
POWER = "a·N^b"


@dataclass
class Fit:
    """``y = a + b·N`` (``y = a·N^b`` for ``POWER``); ``b`` is 0 for a flat fit.
    ``error`` is the mean |relative error| of leave-one-out predictions on the fitted points
    (None when there were too few points to leave one out); ``spread`` is
    their mean |error| in ``y``'s own unit (bytes, CPU seconds per message):
    how far the fitted steps themselves scatter from a fit that did not see
    them, the noise any prediction from them carries."""

    kind: str
    a: float
    b: float = 0.0
    error: float | None = None
    points: int = 0
    spread: float | None = None

    def at(self, n: float) -> float:
        if self.kind == POWER:
            return self.a * max(n, 1.0) ** self.b
        return self.a + self.b * n

    def describe(self, unit: float = 1.0, suffix: str = "") -> str:
        """E.g. ``a + b·N (12.0 + 0.0031·N µs; 3 steps, LOO error 4.1%)``."""
        shape = (f"{self.a * unit:.3g}{suffix}" if self.kind == FLAT else
                 f"{self.a * unit:.3g}·N^{self.b:.2f}{suffix}" if self.kind == POWER else
                 f"{self.a * unit:.3g} + {self.b * unit:.3g}·N{suffix}")
        err = "LOO error –" if self.error is None else f"LOO error {self.error:.1%}"
        steps = "step" if self.points == 1 else "steps"
        return f"{self.kind} ({shape}; {self.points} {steps}, {err})"


def _line(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """Least-squares (a, b) of y = a + b·x; None when the x values do not vary."""
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    sxx = sum((x - mx) ** 2 for x, _ in points)
    if sxx <= 0:
        return None
    b = sum((x - mx) * (y - my) for x, y in points) / sxx
    return my - b * mx, b


def _power(points: list[tuple[float, float]]) -> tuple[float, float] | None:
    """(a, b) of y = a·x^b by least squares of log y on log x; None when a value
    is not positive or the x values do not vary."""
    if any(x <= 0 or y <= 0 for x, y in points):
        return None
    ab = _line([(math.log(x), math.log(y)) for x, y in points])
    return None if ab is None else (math.exp(ab[0]), ab[1])


def _predict(kind: str, rest: list[tuple[float, float]], x: float) -> float | None:
    """``rest``'s fit of shape ``kind`` at ``x``; None when it cannot be fitted."""
    if kind == FLAT:
        return statistics.median(y for _, y in rest)
    ab = (_line if kind == LINEAR else _power)(rest) if len(rest) >= 2 else None
    if ab is None:
        return None
    return ab[0] + ab[1] * x if kind == LINEAR else ab[0] * x ** ab[1]


def _loo(points: list[tuple[float, float]],
         kind: str) -> tuple[float | None, float | None]:
    """Mean |relative error| and mean |error| predicting each point from a fit
    of the others."""
    errs: list[tuple[float, float]] = []
    for i, (x, y) in enumerate(points):
        rest = points[:i] + points[i + 1:]
        if not rest or y == 0:
            continue
        pred = _predict(kind, rest, x)
        if pred is None:
            return None, None
        errs.append((abs(pred - y) / abs(y), abs(pred - y)))
    if not errs:
        return None, None
    return statistics.fmean(e for e, _ in errs), statistics.fmean(d for _, d in errs)


def flat(points: list[tuple[float, float]]) -> Fit:
    """The median of the points, as a constant cost: on a shared machine one step
    disturbed by another process should not move a constant cost."""
    error, spread = _loo(points, FLAT)
    return Fit(FLAT, statistics.median(y for _, y in points), 0.0, error, len(points), spread)


def choose(points: list[tuple[float, float]]) -> Fit | None:
    """Flat, a + b·N or a·N^b for a per-message cost (the rule is in the module docstring)."""
    if not points:
        return None
    best = flat(points)
    if len(points) < 3:
        return best
    shapes = [(LINEAR, _line(points)), (POWER, _power(points))]
    for kind, ab in shapes:
        if ab is None or not (ab[1] > 0 if kind == LINEAR else ab[1] > -1):
            continue
        error, spread = _loo(points, kind)
        fit = Fit(kind, ab[0], ab[1], error, len(points), spread)
        if fit.error is not None and (best.error is None or fit.error < best.error):
            best = fit
    return best


def line(points: list[tuple[float, float]]) -> Fit | None:
    """Bytes against connections, least squares with the intercept free; the
    slope (clamped at 0: memory handed back is not a negative cost) is the
    cost of one more connection.

    Why not the slope from the first step, as the plan used to: the server's
    RSS moves in whole 4 KiB pages, a Python server's allocator takes them in
    arenas (256 KiB for pymalloc), and its dicts double their tables at 2/3
    full. So each step's RSS sits somewhere on a staircase, and the first
    step's RSS includes slack (pages touched, not yet filled). A slope
    anchored on the first point inherits that point's position on the
    staircase in full: over a short span a few pages of rounding become a
    per-connection cost off by several percent, and it can never be averaged
    out. A least-squares line through every fitted step averages where the
    steps sit, and its free intercept absorbs the fixed part (the interpreter,
    the first step's slack) instead of charging it to the slope.

    What no line fitted below a doubling can know is the doubling itself: a
    CPython dict of 5,461 or 10,922 entries reallocates a zero-filled table
    of twice the slots (0.2–0.3 MiB at once), above the 4,000 connections
    the holdout fits on in ``lab.yaml``. The built-in servers keep their
    tables as C servers do for that reason (servers/fdtable.py; poll's own
    ``pollfd`` array, servers/poll_loop.py), and their held-out RSS comes
    within 5 % (tests/data/holdout/README.md); a custom server whose RSS
    climbs such a staircase still misses, and the check prints the slopes.

    ``error`` is the leave-one-out error on the growth above the lowest
    fitted point (the absolute RSS would hide it under the interpreter's tens
    of MiB).
    """
    if len(points) < 2:
        return None
    ab = _line(points)
    if ab is None:
        return None
    x0, y0 = min(points)
    growth = [(x, y - y0) for x, y in points if x != x0]
    errs: list[tuple[float, float]] = []
    for x, g in growth:
        rest = [p for p in points if p[0] != x]
        fit = _line(rest) if len(rest) >= 2 else None
        if fit is not None and g > 0:
            miss = abs(fit[0] + fit[1] * x - y0 - g)
            errs.append((miss / g, miss))
    return Fit(LINEAR, ab[0], max(ab[1], 0.0),
               statistics.fmean(e for e, _ in errs) if errs else None, len(points),
               statistics.fmean(d for _, d in errs) if errs else None)
