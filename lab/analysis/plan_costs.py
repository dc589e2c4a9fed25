"""The plan's costs from one model's rows: memory and CPU per message fitted
against connections (the shapes and the rule are in lab/analysis/fits.py),
which steps are at the CPU ceiling, the CPU cap those costs give, and the
rows a ``load.repeat`` band is planned on. ``lab/analysis/capacity.py`` puts
them into the plan; ``lab/analysis/holdout.py`` checks them.
"""

from __future__ import annotations

import math

from lab.analysis import metrics as m
from lab.analysis.fits import POWER, Fit, choose, line
from lab.results.reader import Row

SATURATED = 0.9  # a step using this share of the cores the model can use is at its ceiling
# what a band varies
COST_FIELDS = ("server_rss_bytes", "kernel_sock_bytes", "server_cpu_s", "server_hold_cpu_s")


def memory_fit(rows: list[Row], key: str) -> Fit | None:
    """Bytes against connections held over ``rows`` (lab/analysis/fits.py ``line``:
    least squares, intercept free); with one step, the plain average as a flat fit."""
    points = [(float(n), float(r[key])) for r in rows
              if (n := m.held(r)) and r.get(key) is not None]
    fit = line(points)
    if fit is None and points:
        n, v = points[0]
        fit = Fit("average", 0.0, v / n, None, 1)
    return fit


def saturated(rows: list[Row], cores: int, host_cpus: int | None = None) -> list[bool]:
    """Per row (one model, step order): did the server use at least ``SATURATED`` of
    the cores its host left it (``metrics.cores_left``: the cores it can use,
    ``cores_available``, less what other processes took) over the step's hold?
    Such a step's CPU is the ceiling, not a cost: the loop never sleeps, so CPU
    per message there is the core divided among however many messages arrived."""
    return [used is not None and used >= SATURATED * left
            for used, left in zip(m.cores_used(rows), m.cores_left(rows, cores, host_cpus),
                                  strict=True)]


def cpu_fit(rows: list[Row], fitted: list[Row], cores: int,
            host_cpus: int | None = None) -> Fit | None:
    """CPU seconds per message against connections (lab/analysis/fits.py ``choose``),
    on the ``fitted`` rows (usable, meeting the SLO) that are below the CPU
    ceiling; not the first row either when it has no hold CPU (its CPU delta
    then holds the server's start-up; a hold's CPU does not)."""
    per_msg = dict(zip(map(id, rows), m.cpu_per_message(rows), strict=True))
    full = dict(zip(map(id, rows), saturated(rows, cores, host_cpus), strict=True))
    first = rows[0] if rows and rows[0].get("server_hold_cpu_s") is None else None
    return choose([(float(m.held(r) or 0), per_msg[id(r)]) for r in fitted
                   if r is not first and not full[id(r)] and per_msg[id(r)] is not None])


def messages_per_conn_s(row: Row) -> float | None:
    """Messages each connection sent per second of the step's hold."""
    n, echo, hold = m.held(row), row.get("echo_count"), row.get("hold_s")
    return echo / n / hold if n and echo and hold else None


def cpu_connections(fit: Fit, per_conn_rate: float, cores: float) -> int | None:
    """Connections whose messages take ``cores``: N·r·cost(N) = cores, with
    cost(N) = a + b·N (a quadratic) or a·N^b (N = (cores / (r·a))^(1 / (1 + b)))."""
    if fit.kind == POWER:
        if fit.a <= 0 or fit.b <= -1:
            return None
        return int((cores / (per_conn_rate * fit.a)) ** (1 / (1 + fit.b)))
    a, b = fit.a * per_conn_rate, fit.b * per_conn_rate
    if b > 0:
        return int((-a + math.sqrt(a * a + 4 * b * cores)) / (2 * b))
    return int(cores / a) if a > 0 else None


def band_rows(rows: list[Row], side: str) -> list[Row] | None:
    """``rows`` with each cost (``COST_FIELDS``) at its repeats' ``_min`` or ``_max``
    (lab/results/repeats.py); None for a run without repeats. ``server_cpu_s``
    (what a run before format 10 plans CPU on) is cumulative, so the band's
    per-step CPU is the difference of the passes' extreme totals: an
    approximation of the extreme step, good while the passes' start-up costs
    are alike."""
    if not any(r.get(f"{f}_{side}") is not None for r in rows for f in COST_FIELDS):
        return None
    return [{**r, **{f: r[f"{f}_{side}"] for f in COST_FIELDS
                     if r.get(f"{f}_{side}") is not None}} for r in rows]
