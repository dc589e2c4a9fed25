"""Capacity plan: how many connections each model holds within the SLO, what
binds first, what a connection costs, and how many hosts a target needs.

``plan_model`` is pure (rows and numbers in, a ``ModelPlan`` out) so the
arithmetic is unit-tested on hand-made rows; ``run-lab capacity`` (lab/cli/capacity_cmd.py) is
``run-lab capacity RUN_DIR [--target-connections N] [--rate R] [--slo-p99 MS]``
and writes ``capacity.md`` and ``capacity.json`` into the run directory
(``lab/analysis/plan_writer.py``).

The rules (also written into capacity.md):

- A step meets the SLO when p99 ≤ the SLO's p99 (a step with no echoes has no
  p99 and passes that test), error_rate ≤ the SLO's error rate, connections held
  ≥ 99 % of the target, and no limit was hit. These are the hold phase's: its
  error_rate counts the hold window only (since format 7), so connects that
  failed and were retried during the ramp do not fail a step; they are the
  connect phase's findings (lab/analysis/connect.py). "binds first" names the
  phase: ``errors (hold)``, ``backlog (connect)``. A churn run's plan adds
  connects/s: the best accept rate at a step meeting the SLO, and nothing per connection
  held ("n/a: churn": connections held, memory and cores per 1000, hosts): a churn step's
  open connections are whichever were in flight when it ended, so a figure per
  connection would divide by chance. The model's capacity is the most
  connections held at a passing step before the first failing one.
- Memory per 1000 connections is the slope of a least-squares line of bytes
  against connections over every usable step, intercept free (so the
  interpreter's fixed footprint does not count, and no single step's page
  rounding sets the slope; with one step, the plain average), for the
  server's RSS and for the host's TCP socket kernel memory
  (``kernel_sock_bytes``: per-socket slab objects plus buffered data; with
  load and server on one machine it holds both ends of each connection, so
  the per-host figure is conservative).
- CPU per message is fitted against connections over the passing steps
  below the CPU ceiling (not the first step, whose CPU holds the start-up):
  flat (the median) or a + b·N, whichever predicts the fitted steps better
  when each is left out (``lab/analysis/fits.py``). A step where the server
  used ≥ 90 % of the cores it can use (one for a single-threaded model, or
  its ``processes``; every core for threads and forking) is at the ceiling:
  its CPU is a cap, not a cost. "CPU/msg µs" and "cores /1000" in the table
  are the last passing step's.
- The CPU cap per host is the connections at the first saturated step (at
  ``--rate``: the messages/s the core served there over the rate per
  connection); else the N at which N × messages per connection per second ×
  the fitted cost at N fills the cores, unless a step held more within the
  SLO at the run's pace (the fit is then contradicted, and the cores used at
  the last passing step are scaled instead). With ``load.repeat`` the plan is
  made again with every cost at its passes' minimum and maximum, and the
  per-host capacity gets that range.
- Per host, each resource caps the connections one server process on a host
  like this one can hold: descriptors (``lab/host/ceiling.py``, the function
  ``run-lab doctor`` uses: FD_SETSIZE for select, else nofile, less the
  server's own descriptors; processes or threads for the forking and threads
  models; fs.file-max for the host), source ports (one client IP per
  server ip:port), CPU (one core for single-threaded models, all cores for
  thread/process models), memory; plus the measured SLO capacity when the sweep
  found a wall (connections held at the step that hit a limit, or the last
  passing step when latency or errors failed first). The smallest binds;
  hosts = ceil(target / that).
- Rows about the load generator rather than the server are left out of all of
  this (``usable_rows``): a truthy ``client_bound`` (a load worker had no
  headroom, so the step's latency and rate are the generator's) and a
  ``worker_lost`` limit (a load worker died mid-step). The plan says how many
  it left out. ``run-lab capacity RUN --holdout`` checks the per-connection
  costs against the steps they were not fitted on (``lab/analysis/holdout.py``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Any

from contract.defaults import USER_CHURN
from contract.limits import BACKLOG, GENERATOR_LIMITS, LIMITS, explain
from lab.analysis import metrics as m
from lab.analysis.causes import cause, cores_available
from lab.analysis.connect import best_connects_per_s
from lab.analysis.fits import Fit
from lab.analysis.plan_costs import (
    band_rows,
    cpu_connections,
    cpu_fit,
    memory_fit,
    messages_per_conn_s,
    saturated,
)
from lab.host.ceiling import effective_nofile, processes_for, server_ceilings
from lab.host.facts import HostFacts
from lab.results.reader import Row, Run
from lab.scenario.types import SLO, ServerSpec

# What runs out, by limit kind or failed SLO criterion.
CRITERION_RESOURCE = {**{kind: limit.resource for kind, limit in LIMITS.items()},
                      "latency": "CPU (latency SLO)", "errors": "errors",
                      "connections": "connections"}
# Why a row is left out of the plan's fit (usable_rows), as the plan's note says it.
CLIENT_BOUND = "client-bound (the load generator, not the server, set its numbers)"
WORKER_LOST_NOTE = "worker_lost (a load worker died during the step)"


@dataclass
class ModelPlan:
    """One model's line of the plan. Bytes and cores are per 1000 connections."""

    model: str
    capacity: int | None  # most connections held at a passing step, None if none passed
    capacity_step: int | None
    swept_to: int  # largest target in the sweep
    wall: int | None  # connections held where the sweep failed (limit row), else capacity
    binds: str  # limit kind or failed criterion, "none" if every step passed
    why: str
    rss_per_1000: float | None = None
    kernel_per_1000: float | None = None
    cores_per_1000: float | None = None
    cpu_per_message_s: float | None = None
    host_capacity: dict[str, int] = field(default_factory=dict)  # resource -> connections/host
    host_binding: str | None = None
    hosts: int | None = None
    left_out: dict[str, int] = field(default_factory=dict)  # why -> rows not fitted
    rss_fit: Fit | None = None  # bytes = a + b·N (lab/analysis/fits.py)
    kernel_fit: Fit | None = None
    cpu_fit: Fit | None = None  # CPU seconds per message = a (flat) or a + b·N
    saturated_at: int | None = None  # connections at the first step at the CPU ceiling
    ceiling_messages_per_s: float | None = None  # messages/s the full core(s) served there
    host_band: list[int] | None = None  # [low, high] per-host capacity over the repeats
    messages_per_conn_s: float | None = None  # the pace measured at the capacity step
    failing_step: int | None = None  # the first step that missed the SLO
    connects_per_s: float | None = None  # churn: the best accept rate at a passing step
    churn: bool = False  # a churn run: no memory per held connection (its users close)


def _truthy(value: Any) -> bool:
    """A steps.csv flag: "true"/"1"/"yes" (any case) or True; empty or absent is false."""
    return value is True or str(value or "").strip().lower() in ("true", "1", "yes")


def usable_rows(rows: list[Row]) -> tuple[list[Row], dict[str, int]]:
    """The rows a cost may be fitted on, and how many others were left out, by why.

    A client-bound row (``client_bound`` truthy; the column is absent in older
    runs) or a ``worker_lost`` row measures the load generator, not the server;
    fitting it would charge the generator's limits to the model."""
    kept: list[Row] = []
    left_out: dict[str, int] = {}
    for r in rows:
        why = (CLIENT_BOUND if _truthy(r.get("client_bound")) else
               WORKER_LOST_NOTE if r.get("limit") in GENERATOR_LIMITS else None)
        if why:
            left_out[why] = left_out.get(why, 0) + 1
        else:
            kept.append(r)
    return kept, left_out


def slo_of(run: Run, p99_ms: float | None = None) -> SLO:
    """The run's SLO from its scenario (defaults where missing), p99 optionally overridden."""
    base = run.slo
    return base if p99_ms is None else replace(base, p99_ms=p99_ms)


def passes(row: Row, slo: SLO, churn: bool = False) -> list[str]:
    """Why ``row`` misses the SLO (empty list: it meets it). A churn step
    (``churn``) holds nothing by design: its users close after their
    messages, so connections held are not judged."""
    why = []
    if row.get("limit"):
        why.append(f"limit {row['limit']}")
    target, held = row.get("target_connections") or 0, m.held(row) or 0
    if held < 0.99 * target and not churn:
        why.append(f"held {held} of {target} connections")
    p99 = row.get("p99_ms")
    if p99 is not None and p99 > slo.p99_ms:
        why.append(f"p99 {p99:g} ms > {slo.p99_ms:g} ms")
    err = row.get("error_rate") or 0.0
    if err > slo.error_rate:
        why.append(f"error rate {err:.2%} > {slo.error_rate:.2%}")
    return why


def _binding(failing: Row | None, why: list[str], swept_to: int,
             evidence: str | None = None) -> tuple[str, str]:
    """What bound the model, and why in words; ``evidence`` is the failing
    step's cause from lab/analysis/causes.py (never a guess)."""
    if failing is None:
        return "none", f"every step met the SLO up to {swept_to} connections"
    kind = failing.get("limit")
    if kind:
        return kind, explain(kind)
    because = "; ".join(why) + (f" — cause: {evidence}" if evidence else "")
    if any(w.startswith("p99") for w in why):
        return "latency", because
    if any(w.startswith("error") for w in why):
        return "errors", because
    return "connections", because


def host_capacity(plan: ModelPlan, host: dict[str, Any], nofile: Any, model_kind: str | None,
                  target: int | None, rate: float | None, processes: int = 1) -> dict[str, int]:
    """Connections one server on a host like ``host`` can hold, per resource
    (``processes``: its listening processes, each with its own nofile and core)."""
    caps: dict[str, int] = {}
    facts = HostFacts.from_record(host)
    if facts.nofile_hard or isinstance(nofile, int) or facts.file_max:
        # lab/host/ceiling.py, as doctor uses it: a host that runs servers only.
        for c in server_ceilings(model_kind, nofile, facts, processes=processes):
            resource = CRITERION_RESOURCE.get(c.limit, c.limit)
            if c.limit != BACKLOG:  # blocking's queue is a measured finding, not a host cap
                caps[resource] = min(caps.get(resource, c.connections), c.connections)
    if facts.port_range:
        caps["source ports"] = facts.ephemeral_ports
    cpus = host.get("cpus") or 1
    cores = cores_available(model_kind, cpus, processes)
    per_conn_rate = rate / target if rate and target else plan.messages_per_conn_s
    per_conn_cores = (plan.cpu_per_message_s * rate / target
                      if rate and target and plan.cpu_per_message_s else
                      (plan.cores_per_1000 or 0) / 1000)
    fitted = (cpu_connections(plan.cpu_fit, per_conn_rate, cores)
              if plan.cpu_fit is not None and per_conn_rate else None)
    if plan.saturated_at is not None and plan.ceiling_messages_per_s:
        # The core was full: the most messages it served caps the connections.
        caps["CPU"] = (int(plan.ceiling_messages_per_s / (rate / target)) if rate and target
                       else plan.saturated_at)
    elif fitted is not None and (rate or not plan.capacity or fitted >= plan.capacity):
        caps["CPU"] = fitted
    elif per_conn_cores:  # at the run's pace a fit below a measured pass is contradicted
        caps["CPU"] = int(cores / per_conn_cores)
    per_conn_bytes = (plan.rss_per_1000 or 0) / 1000 + (plan.kernel_per_1000 or 0) / 1000
    if host.get("mem_bytes") and per_conn_bytes > 0:
        caps["memory"] = int(host["mem_bytes"] / per_conn_bytes)
    if plan.binds != "none" and plan.wall is not None:
        caps[f"measured: {CRITERION_RESOURCE.get(plan.binds, plan.binds)}"] = plan.wall
    return caps


def plan_model(model: str, rows: list[Row], slo: SLO, host: dict[str, Any] | None = None,
               nofile: Any = None, model_kind: str | None = None,
               target: int | None = None, rate: float | None = None,
               processes: int = 1, band: bool = True, churn: bool = False,
               server: ServerSpec | None = None) -> ModelPlan:
    """The plan for one model from its rows sorted by step (see the module docstring);
    ``server`` (its scenario entry) lets the failing step's cause name its settings."""
    kept, left_out = usable_rows(rows)
    ok: list[Row] = []
    failing, why = None, []
    for r in kept:
        why = passes(r, slo, churn)
        if why:
            failing = r
            break
        ok.append(r)
    swept_to = max((r.get("target_connections") or 0 for r in kept), default=0)
    evidence = None
    if failing is not None:
        i = next(i for i, r in enumerate(rows) if r is failing)
        evidence = cause(failing, why, m.cores_used(rows)[i],
                         cores_available(model_kind, (host or {}).get("cpus"), processes), server,
                         (host or {}).get("cpus"))
    binds, reason = _binding(failing, why, swept_to, evidence)
    best = ok[-1] if ok else None
    capacity = m.held(best) if best else None
    # A limit row shows where the resource ran out; otherwise the last passing step does.
    wall = m.held_at_limit(failing) if failing is not None and failing.get("limit") else capacity
    plan = ModelPlan(model=model, capacity=capacity,
                     capacity_step=best.get("step") if best else None,
                     swept_to=swept_to, wall=wall, binds=binds, why=reason, left_out=left_out,
                     failing_step=failing.get("step") if failing is not None else None,
                     connects_per_s=best_connects_per_s(ok), churn=churn)
    cores = cores_available(model_kind, (host or {}).get("cpus"), processes)
    # Memory is a measurement, valid at failing steps too: a line over every usable step.
    # Not for churn: the connections open at a step's end are whichever were in
    # flight at that instant, so bytes per connection would divide by chance.
    if not churn:
        plan.rss_fit = memory_fit(kept, "server_rss_bytes")
        plan.kernel_fit = memory_fit(kept, "kernel_sock_bytes")
    if best:
        plan.rss_per_1000 = None if plan.rss_fit is None else plan.rss_fit.b * 1000
        plan.kernel_per_1000 = None if plan.kernel_fit is None else plan.kernel_fit.b * 1000
        # CPU is cumulative: per-step deltas over every row, so a left-out step's
        # CPU is not charged to the next one.
        idx = next(i for i, r in enumerate(rows) if r is best)
        used = m.cores_used(rows)[idx]
        if used is not None and m.held(best) and not churn:
            plan.cores_per_1000 = used / m.held(best) * 1000
        plan.cpu_per_message_s = m.cpu_per_message(rows)[idx]
        cpus = (host or {}).get("cpus")
        plan.cpu_fit = cpu_fit(rows, ok, cores, cpus)
        plan.messages_per_conn_s = messages_per_conn_s(best)
        full = [r for r, s in zip(rows, saturated(rows, cores, cpus), strict=True)
                if s and any(r is k for k in ok)]
        if full:
            plan.saturated_at = m.held(full[0])
            plan.ceiling_messages_per_s = max(
                (r.get("echo_count") or 0) / (r.get("hold_s") or 1) for r in full)
    # Every per-host cap is in connections held, which a churn run does not measure.
    plan.host_capacity = {} if churn else host_capacity(plan, host or {}, nofile, model_kind,
                                                        target, rate, processes)
    if plan.host_capacity:
        # On a tie the measured wall names the binding: it is evidence, the rest arithmetic.
        plan.host_binding = min(plan.host_capacity, key=lambda k: (
            plan.host_capacity[k], not k.startswith("measured")))
        per_host = plan.host_capacity[plan.host_binding]
        if target:
            plan.hosts = math.ceil(target / per_host) if per_host > 0 else None
        if band:
            plan.host_band = _band(plan, rows, slo, host, nofile, model_kind, target, rate,
                                   processes, churn)
    return plan


def _band(plan: ModelPlan, rows: list[Row], slo: SLO, host: dict[str, Any] | None,
          nofile: Any, model_kind: str | None, target: int | None, rate: float | None,
          processes: int, churn: bool) -> list[int] | None:
    """[low, high] connections per host: the plan again with every cost at its
    repeats' ``_max`` and at its ``_min`` (``band_rows``); the median's figure is
    inside by construction. None without repeats."""
    per_host = [plan.host_capacity[plan.host_binding or ""]]
    for side in ("min", "max"):
        if (varied := band_rows(rows, side)) is None:
            return None
        other = plan_model(plan.model, varied, slo, host, nofile, model_kind, target, rate,
                           processes, band=False, churn=churn)
        if other.host_binding:
            per_host.append(other.host_capacity[other.host_binding])
    return [min(per_host), max(per_host)]


def processes_of(run: Run, server: ServerSpec | None, kind: str | None) -> int:
    """A server's listening processes: as many as its final stats list (a
    run recorded when ``auto`` was sized otherwise keeps its own count), else
    ``auto`` sized as the backend sizes it (lab/backends/server_cmd.py): from
    the host's nofile and the top step."""
    final = (run.model_meta(server.name).get("final") or {}) if server else {}
    if server is not None and isinstance(final.get("processes"), list) and final["processes"]:
        return len(final["processes"])
    if server is None or run.scenario is None:
        return 1
    limit = effective_nofile(server.limits.nofile, HostFacts.from_record(run.host or {}))
    return processes_for(server.processes, kind, limit, run.scenario.max_connections)


def model_setting(run: Run, model: str) -> dict[str, Any]:
    """What ``plan_model`` needs to know of ``model``'s server in ``run`` beyond its rows."""
    server = run.server(model)
    kind = (server.model if server else None) or run.model_meta(model).get("kind") or model
    return {"host": run.host, "nofile": server.limits.nofile if server else None,
            "model_kind": kind, "processes": processes_of(run, server, kind)}


def plan_run(run: Run, slo: SLO, target: int | None = None,
             rate: float | None = None) -> list[ModelPlan]:
    """Plans for every model in ``run``; connects/s only for a churn run (an
    echo run's hold has connects only from reconnects after failures)."""
    churn = is_churn(run)
    plans = [plan_model(model, run.rows_for(model), slo, target=target, rate=rate,
                        churn=churn, server=run.server(model), **model_setting(run, model))
             for model in run.models]
    if not churn:
        for plan in plans:
            plan.connects_per_s = None
    return plans


def is_churn(run: Run) -> bool:
    """A run of ``user: churn``: every user connects, echoes and closes."""
    return run.scenario is not None and run.scenario.load.user == USER_CHURN
