"""Capacity honesty: do the plan's costs predict the steps they were not fitted on?

The capacity plan quotes three costs per model (server RSS per connection,
kernel socket memory per connection, CPU per message) and multiplies them out
to connections per host, usually far beyond the largest step measured. That is
only as good as the costs being constant as connections grow. This check fits
them with the plan's own code (``capacity.plan_model``, no second fit) on the
lower half of a model's usable steps by connections held (``usable_rows``:
client-bound and ``worker_lost`` rows are out), and predicts each step of the
upper half:

- memory: the growth since the fit's first step, the fitted line (bytes =
  a + b·N, intercept free, lab/analysis/fits.py ``line``) at the step's
  connections less the measured first step, against the measured growth
  (every step counts, as in the plan);
- CPU: the server's CPU seconds in the step's hold, the fitted CPU per
  message at the step's connections (``fits.choose``) × the hold's echoes,
  but never more than the cores the host left the model × the hold's
  seconds (``metrics.cores_left``: the cores it can use less what other
  processes took; a full core is a ceiling, and on a shared host less than
  a core is: the check says "at the ceiling" where it capped), against the
  measured hold CPU; only at steps that meet the SLO, because the plan
  takes CPU from a passing step and never past its wall.

Each figure names the fit chosen and its leave-one-out error on the fitted
steps, so a bad extrapolation can be told from a bad fit. (On the 2-vCPU VM
this was built on, epoll's CPU per message, tens of µs, moved ±20 % between
runs of the same step, more than ``TOLERANCE``; with no hardware performance
counters there, CPU time is the only cost unit: tests/data/holdout/README.md.)

**Noise.** A prediction cannot be closer than the measurements it is made
from and compared with. Each check carries the noise it has to beat
(``Check.noise``, relative to the measured value), the larger of:

- the fitted steps' own scatter: each fitted step predicted from a fit of
  the others (``Fit.spread``, ``Fit.error``). Memory's is in bytes (RSS moves
  in pages and allocator arenas, the same few hundred KiB at any step), so
  it shrinks relative to a held-out step's larger growth; CPU per message's
  is relative (another process taking the core for a moment disturbs a
  step's CPU in proportion);
- with ``load.repeat``, the held-out step's own min–max band over its passes
  (half its width), the spread a second measurement of the same step gave.

A check at the ceiling predicts no cost, only the cores, so only its band
counts. A figure whose every miss (|error| > ``TOLERANCE``) is within
``NOISE_SPAN`` times a noise larger than ``TOLERANCE`` is "not predictable
from these steps: noise ±x%" rather than a failed extrapolation; a miss
beyond that is one. Twice, because the noise is a mean deviation of the
fitted steps, and the held-out step is measured with a noise of its own:
twice a mean deviation covers about nine draws in ten of a normal scatter.

The error is (predicted − measured) / measured, so it is the fitted cost's
relative error against the cost measured at that step (not diluted by the
interpreter's fixed footprint). A model with fewer than ``MIN_STEPS`` usable
steps says so instead of a number: two fitted points and two held out is the
least that tests a slope rather than restating it.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from lab.analysis import metrics as m
from lab.analysis.capacity import ModelPlan, model_setting, passes, plan_model, usable_rows
from lab.analysis.causes import cores_available
from lab.analysis.fits import Fit
from lab.analysis.plan_costs import band_rows
from lab.results.reader import Row, Run
from lab.scenario.types import SLO

MIN_STEPS = 4
TOLERANCE = 0.10  # |error| within this: the cost extrapolates
NOISE_SPAN = 2.0  # a miss within this many noises (above TOLERANCE) is not predictable

# figure -> (label, the ModelPlan fit it checks)
FIGURES = {
    "rss": ("server RSS / connection", "rss_fit"),
    "kernel": ("kernel memory / connection", "kernel_fit"),
    "cpu": ("CPU / message", "cpu_fit"),
}
MEMORY_KEYS = {"rss": "server_rss_bytes", "kernel": "kernel_sock_bytes"}


@dataclass
class Check:
    """One held-out step: what the fitted cost predicts there and what was measured."""

    step: int | None
    held: int | None
    predicted: float | None  # bytes of growth since the fit's first step, or CPU seconds
    measured: float | None
    error: float | None  # (predicted - measured) / measured
    note: str = ""  # why there is no error
    noise: float | None = None  # relative noise the prediction has to beat (module docstring)

    @property
    def missed(self) -> bool:
        return self.error is not None and abs(self.error) > TOLERANCE

    @property
    def in_noise(self) -> bool:
        """A miss no honest fit could avoid: within ``NOISE_SPAN`` noises, the
        noise above the tolerance."""
        return (self.missed and self.noise is not None and self.noise > TOLERANCE
                and abs(self.error or 0.0) <= NOISE_SPAN * self.noise)


@dataclass
class FigureHoldout:
    figure: str  # key of FIGURES
    fitted: float | None  # bytes per connection, or CPU seconds per message (the fit's a)
    checks: list[Check] = field(default_factory=list)
    fit: str = "–"  # the chosen fit and its leave-one-out error (lab/analysis/fits.py)
    why: str = ""  # for a memory miss: the slopes the held-out steps grew at

    @property
    def worst(self) -> Check | None:
        scored = [c for c in self.checks if c.error is not None]
        return max(scored, key=lambda c: abs(c.error or 0.0), default=None)

    @property
    def status(self) -> str:
        """``within`` (every scored check within ``TOLERANCE``), ``noise`` (every
        miss within a noise above it: not predictable from these steps),
        ``miss`` (a miss above the noise), or ``unchecked``."""
        if self.worst is None:
            return "unchecked"
        misses = [c for c in self.checks if c.missed]
        if not misses:
            return "within"
        return "noise" if all(c.in_noise for c in misses) else "miss"

    @property
    def noise(self) -> float | None:
        """The largest noise among the checks that missed (else among all)."""
        pool = [c for c in self.checks if c.missed] or self.checks
        return max((c.noise for c in pool if c.noise is not None), default=None)


@dataclass
class ModelHoldout:
    model: str
    usable: int
    fit_steps: list[int | None] = field(default_factory=list)
    held_out_steps: list[int | None] = field(default_factory=list)
    figures: list[FigureHoldout] = field(default_factory=list)
    verdict: str = ""
    left_out: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _relative(predicted: float, measured: float | None) -> tuple[float | None, str]:
    if measured is None:
        return None, "not measured"
    if measured <= 0:
        return None, f"measured {measured:g}: no growth to compare with"
    return (predicted - measured) / measured, ""


def _band(low: float | None, high: float | None, measured: float | None) -> float | None:
    """Half the min–max band of a step's passes, relative to the measured value."""
    if low is None or high is None or not measured or measured <= 0:
        return None
    return abs(high - low) / 2 / measured


def _larger(*noises: float | None) -> float | None:
    return max((n for n in noises if n is not None), default=None)


def _memory(fig: str, plan: ModelPlan, fit: list[Row], held_out: list[Row]) -> FigureHoldout:
    attr = FIGURES[fig][1]
    key = MEMORY_KEYS[fig]
    line = getattr(plan, attr)
    out = FigureHoldout(fig, None if line is None else line.b, fit=_described(line, fig))
    base = next((r for r in fit if r.get(key) is not None and m.held(r)), None)
    for r in held_out:
        if line is None or base is None:
            out.checks.append(Check(r.get("step"), m.held(r), None, None, None, "no fitted cost"))
            continue
        # the fitted line at N (its intercept is part of the fit) less the measured base
        predicted = line.at(m.held(r) or 0) - base[key]
        measured = None if r.get(key) is None else r[key] - base[key]
        error, note = _relative(predicted, measured)
        # bytes of scatter are the same at any step: relative to this step's growth
        scatter = line.spread / measured if line.spread is not None and measured else None
        noise = _larger(scatter, _band(r.get(f"{key}_min"), r.get(f"{key}_max"), measured))
        out.checks.append(Check(r.get("step"), m.held(r), predicted, measured, error, note,
                                noise))
    if line is not None and out.status == "miss":
        out.why = _slopes(line, [fit[-1], *held_out], key)
    return out


def _slopes(line: Fit, rows: list[Row], key: str) -> str:
    """What a memory miss looked like: bytes per connection between consecutive
    steps from the last fitted one on, against the fitted slope. A line cannot
    follow growth whose slope changes (a table that doubles past the fitted
    steps, a new allocator arena), and this says by how much it changed."""
    pts = sorted((m.held(r) or 0, r[key]) for r in rows if r.get(key) is not None)
    slopes = [(y1 - y0) / (x1 - x0)
              for (x0, y0), (x1, y1) in zip(pts, pts[1:], strict=False) if x1 > x0]
    if not slopes:
        return ""
    return (f"between steps it grew {_span(min(slopes), max(slopes), '.0f')} B per "
            f"connection, the fit {line.b:.0f} B")


def _cpu(plan: ModelPlan, rows: list[Row], held_out: list[Row], slo: SLO,
         cores: int, host_cpus: int | None = None) -> FigureHoldout:
    fit = plan.cpu_fit
    out = FigureHoldout("cpu", None if fit is None else fit.a, fit=_described(fit, "cpu") + (
        f"; ceiling {_cores(cores)}" if fit is not None else ""))
    used_s = dict(zip(map(id, rows), m.hold_cpu(rows), strict=True))  # every row: true steps
    secs = dict(zip(map(id, rows), m.hold_seconds(rows), strict=True))
    left = dict(zip(map(id, rows), m.cores_left(rows, cores, host_cpus), strict=True))
    bands = {side: dict(zip(map(id, rows), m.hold_cpu(varied), strict=True))
             for side in ("min", "max") if (varied := band_rows(rows, side)) is not None}
    costs: list[tuple[int, float, float | None]] = []  # _cpu_why: N, per message, cores used
    for r in held_out:
        step, held = r.get("step"), m.held(r)
        if why := passes(r, slo):
            out.checks.append(Check(step, held, None, used_s[id(r)], None,
                                    "misses the SLO (" + "; ".join(why) + "): the plan "
                                    "takes no CPU cost past its wall"))
        elif fit is None or not r.get("echo_count"):
            out.checks.append(Check(step, held, None, used_s[id(r)], None, "no fitted cost"))
        else:
            # The fitted cost at this many connections, but never more CPU than the
            # cores the host left the model for the step's seconds: that is a ceiling.
            demand = fit.at(held or 0) * r["echo_count"]
            room = left[id(r)]
            ceiling = room * secs[id(r)] if secs[id(r)] else None
            capped = ceiling is not None and demand > ceiling
            predicted = ceiling if capped and ceiling is not None else demand
            measured = used_s[id(r)]
            error, note = _relative(predicted, measured)
            band = _band(*(bands[s].get(id(r)) if s in bands else None for s in ("min", "max")),
                         measured)
            used = measured / secs[id(r)] if capped and measured is not None and secs[id(r)] \
                else None
            if used is not None:
                # the ceiling predicts no cost, only the cores: the fit's scatter is not in it
                note = note or f"at the ceiling: the server used {used:.2f} of {_room(room, cores)}"
                noise = band
            else:
                noise = _larger(fit.error, band)
            out.checks.append(Check(step, held, predicted, measured, error, note, noise))
            if measured is not None:
                costs.append((held or 0, measured / r["echo_count"], used))
    if fit is not None and out.status == "miss":
        out.why = _cpu_why(fit, costs, cores)
    return out


def _room(room: float, cores: int) -> str:
    """The cores a step's host left the model, in words."""
    if room >= cores:
        return _cores(cores)
    return f"the {room:.2f} of {_cores(cores)} its host left it"


def _span(lo: float, hi: float, fmt: str) -> str:
    """``lo–hi`` in ``fmt``, or one number when they print alike."""
    a, b = format(lo, fmt), format(hi, fmt)
    return a if a == b else f"{a}–{b}"


def _cores(n: int) -> str:
    return f"{n} core{'s' if n != 1 else ''}"


def _cpu_why(fit: Fit, costs: list[tuple[int, float, float | None]], cores: int) -> str:
    """What a CPU miss looked like: the cost per message the held-out steps
    measured against the fit's there, and at the ceiling the share of the
    cores the server got (on a host shared with the load generator a busy
    loop does not get the whole core, and a loop that batches several ready
    descriptors per wake-up is not busy all the time)."""
    parts = []
    below = [(n, c) for n, c, used in costs if used is None]
    if below:
        lo, hi = min(c for _, c in below), max(c for _, c in below)
        want = [fit.at(n) for n, _ in below]
        parts.append(f"below the ceiling it cost {_span(lo * 1e6, hi * 1e6, '.0f')} µs per "
                     f"message, the fit {_span(min(want) * 1e6, max(want) * 1e6, '.0f')} µs")
    shares = [used for _, _, used in costs if used is not None]
    if shares:
        parts.append(f"at the ceiling the server used {_span(min(shares), max(shares), '.2f')} "
                     f"of the {_cores(cores)} the plan allows")
    return "; ".join(parts)


def _described(fit: Fit | None, fig: str) -> str:
    """The chosen fit in words, in the figure's unit (µs for CPU, bytes for memory)."""
    if fit is None:
        return "–"
    return fit.describe(1e6, " µs") if fig == "cpu" else fit.describe(1.0, " B")


def error_text(c: Check) -> str:
    """A check's relative error as signed percent, with its note."""
    if c.error is None:
        return c.note
    error = f"{c.error if abs(c.error) >= 5e-4 else 0.0:+.1%}"  # no "-0.0%"
    return f"{error} ({c.note})" if c.note else error


def _verdict(h: ModelHoldout) -> str:
    """One sentence per model: a miss above the noise fails the extrapolation;
    misses within a noise above ``TOLERANCE`` are named as not predictable from
    these steps (with the noise), never passed."""
    scored = [(f, f.worst) for f in h.figures if f.worst is not None]
    if not scored:
        return f"{h.model}: nothing to compare (no fitted cost met a measured held-out step)."
    label = lambda f: FIGURES[f.figure][0]  # noqa: E731
    missed = [f for f, _ in scored if f.status == "miss"]
    noisy = [f for f, _ in scored if f.status == "noise"]
    f, c = max([p for p in scored if p[0] in missed] or scored,
               key=lambda p: abs(p[1].error or 0.0))
    where = f"{label(f)} {error_text(c)} at {c.held} connections"
    unchecked = [label(x) for x in h.figures if x.worst is None]
    rest = f"; not checked: {', '.join(unchecked)}" if unchecked else ""
    noise = "".join(f"; {label(x)}: not predictable from these steps: noise ±{x.noise:.0%}, "
                    f"error up to {error_text(x.worst) if x.worst else '–'}"
                    for x in noisy if x.noise is not None)
    why = "".join(f"; {label(x)}: {x.why}" for x in missed if x.why)
    if missed:
        return (f"{h.model}: does NOT extrapolate within ±{TOLERANCE:.0%}: worst "
                f"{where}{why}{noise}{rest}.")
    if noisy:
        within = [label(x) for x, _ in scored if x.status == "within"]
        return (f"{h.model}: within ±{TOLERANCE:.0%}: {', '.join(within) or 'none'}"
                f"{noise}{rest}.")
    return f"{h.model}: extrapolates within ±{TOLERANCE:.0%} (worst {where}){rest}."


def holdout_model(model: str, rows: list[Row], slo: SLO, host: dict[str, Any] | None = None,
                  nofile: Any = None, model_kind: str | None = None,
                  processes: int = 1) -> ModelHoldout:
    """Fit the plan on the lower half of ``rows`` (one model, in step order), check the rest.
    The server's setting (``capacity.model_setting``) gives the cores its CPU can reach."""
    kept, left_out = usable_rows(rows)
    kept = [r for r in kept if m.held(r)]
    h = ModelHoldout(model, usable=len(kept), left_out=left_out)
    if len(kept) < MIN_STEPS:
        h.verdict = (f"{model}: too few usable steps to hold any out ({len(kept)}; "
                     f"{MIN_STEPS} needed: half to fit, half to predict).")
        return h
    by_held = sorted(kept, key=lambda r: m.held(r) or 0)
    upper = {id(r) for r in by_held[math.ceil(len(by_held) / 2):]}
    fit = [r for r in kept if id(r) not in upper]
    held_out = [r for r in kept if id(r) in upper]
    h.fit_steps = [r.get("step") for r in fit]
    h.held_out_steps = [r.get("step") for r in held_out]
    # The plan itself, on every row but the held-out ones (left-out rows stay for CPU deltas).
    plan = plan_model(model, [r for r in rows if id(r) not in upper], slo, host, nofile,
                      model_kind, processes=processes, band=False)
    cores = cores_available(model_kind, (host or {}).get("cpus"), processes)
    h.figures = [_memory("rss", plan, fit, held_out), _memory("kernel", plan, fit, held_out),
                 _cpu(plan, rows, held_out, slo, cores, (host or {}).get("cpus"))]
    h.verdict = _verdict(h)
    return h


def holdout_run(run: Run, slo: SLO) -> list[ModelHoldout]:
    """The holdout check for every model in ``run``."""
    return [holdout_model(model, run.rows_for(model), slo, **model_setting(run, model))
            for model in run.models]
