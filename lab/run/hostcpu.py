"""The server host's CPU over a step's hold: how much of its cores everyone took.

A server whose loop never sleeps (poll walking 19,000 descriptors, a busy
poller) uses all of one core *that the host gives it*. On a machine shared
with the load generator, the lab, other jobs or other VMs, that is less than
a core: the scheduler shares a CPU between runnable tasks, and a hypervisor
can take the vCPU away altogether (``steal``). A plan that takes "one core"
as such a server's ceiling then over-predicts its CPU by whatever the others
took (the lab's recorded runs: 0.52-0.96 of a core at poll's saturated
steps, 0.97-0.98 on a quiet machine).

The kernel counts every CPU's time by state in the first line of
``/proc/stat`` (``cpu  user nice system idle iowait irq softirq steal ...``,
in ``USER_HZ`` ticks, summed over CPUs). Busy here is everything but
``idle`` and ``iowait`` (a CPU in iowait runs nothing): user, nice, system,
irq, softirq and steal (time the hypervisor ran someone else while this
vCPU had work: lost to the host as surely as another process's). ``guest``
is already inside ``user``. The file is not namespaced, so the lab reads it
only when the server runs on this machine (``Backend.on_this_machine``);
elsewhere the column stays empty, never a made-up figure.

``host_busy_s`` less the server's own CPU over the same window is what the
others took: ``lab/analysis/metrics.py`` ``cores_left``.
"""

from __future__ import annotations

import bisect
from pathlib import Path

from lab.host.proctree import CLOCK_TICKS  # USER_HZ, the unit of /proc/stat

STAT = Path("/proc/stat")
# Fields of the "cpu" line after the label: user nice system idle iowait irq softirq steal
BUSY_FIELDS = (0, 1, 2, 5, 6, 7)


def busy_seconds(path: Path = STAT) -> float | None:
    """CPU seconds the whole machine has been busy since boot (all CPUs), or None."""
    try:
        with path.open() as f:
            first = f.readline().split()
        ticks = [int(first[1 + i]) for i in BUSY_FIELDS]
    except (OSError, ValueError, IndexError):
        return None
    return sum(ticks) / CLOCK_TICKS


MIN_COVER = 0.5  # the samples inside a window must span at least this share of it


def over_window(times: list[float], values: list[float], start: float,
                end: float) -> float | None:
    """How much a cumulative counter sampled at ``times`` (ascending) grew over
    ``[start, end]``: its rate between the first and the last sample inside
    the window, times the window's length. The samples come every half second
    or so and the row is made as soon as the step ends, before a sample after
    its end may exist; a rate over the samples inside stands for the whole
    window. None when fewer than two samples lie inside or they span less than
    ``MIN_COVER`` of it (no honest value)."""
    lo, hi = bisect.bisect_left(times, start), bisect.bisect_right(times, end) - 1
    if hi <= lo or end <= start:
        return None
    span = times[hi] - times[lo]
    if span < MIN_COVER * (end - start):
        return None
    return max(values[hi] - values[lo], 0.0) / span * (end - start)


class HostCpuSampler:
    """The host's busy CPU seconds over time, so a row can take its hold window's."""

    def __init__(self, enabled: bool, read=busy_seconds):
        self.enabled, self.read = enabled, read
        self.times: list[float] = []
        self.values: list[float] = []

    def sample(self, now: float) -> None:
        value = self.read() if self.enabled else None
        if value is not None and (not self.times or now > self.times[-1]):
            self.times.append(now)
            self.values.append(value)

    def between(self, start: float, end: float) -> float | None:
        """Busy CPU seconds of the host from ``start`` to ``end`` (``over_window``)."""
        return over_window(self.times, self.values, start, end)
