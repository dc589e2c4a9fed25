"""The run loop: for each server a fresh server, then the load's steps.

Per server it starts the server (process or container) and the Locust
master with its workers, then polls both: the server's JSON events are
appended to ``logs/<server>.events.jsonl`` as they arrive, the loadgen's step
records to ``logs/<server>.steps.jsonl``, and each finished step becomes a
row in ``steps.csv``/``run.json`` at once (:mod:`lab.results.writer`). When a step
shows that a limit stopped the server (it reported one and the load could
not reach its target, or it died), the loop names the limit, records the log
tail and moves on to the next server instead of aborting the run.

The loop only talks to :mod:`lab.backends.base`'s interface.
"""

from __future__ import annotations

import time
import traceback
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lab.backends.base import Backend, LoadHandle, RunContext, ServerHandle
from lab.errors import BackendError, ResultsError, interruption
from lab.results.writer import (
    RunRecord,
    create_run_dir,
    load_side_limit,
    make_row,
)
from lab.run.death import cause
from lab.run.kernel import KernelSampler
from lab.run.live import LiveView
from lab.run.monitors import ServerMonitor, SockSampler, append_jsonl
from lab.scenario.types import Scenario, ServerSpec
from lab.teardown import Teardown, attempt
from lab.versions import git_commit

STATS_GRACE_S = 3.0  # how long a finished step waits for the server's next stats event
STARTUP_SLACK_S = 60.0  # load start-up (workers connecting) before the first step
STEP_SLACK_S = 30.0  # per step, on top of ramp + hold, before a model is declared stuck


@dataclass
class ModelOutcome:
    limit: str | None = None
    stopped_at_step: int | None = None
    error: str | None = None
    rows: list[dict[str, Any]] = field(default_factory=list)
    interrupted: bool = False
    mismatch_example: dict[str, Any] | None = None  # the first reply that was not the echo

    @property
    def measured(self) -> bool:
        """At least one step of this model finished and was recorded."""
        return bool(self.rows)


def planned_s(scenario: Scenario) -> float:
    """Ramp + hold of every step: how long one model's load runs when all goes to plan."""
    total, previous = 0.0, 0
    for step in scenario.load.steps:
        total += (step.connections - previous) / scenario.load.spawn_rate + step.hold_s
        previous = step.connections
    return total


def expected_duration_s(scenario: Scenario) -> float:
    """Ramp + hold of every step, plus slack: past this a model is stuck."""
    return STARTUP_SLACK_S + planned_s(scenario) + STEP_SLACK_S * len(scenario.load.steps)


def stops_model(row: dict[str, Any], server_dead: bool) -> bool:
    """A step ends a model when its server died, when its replies were not the
    bytes sent (more steps would measure errors, not capacity), or when a
    limit kept the load below the step's target."""
    if server_dead or row.get("limit") in ("crash", "mismatch"):
        return True
    return bool(row.get("limit")) and (row.get("connected") or 0) < row["target_connections"]


class Runner:
    """Runs one scenario on one backend into one run directory."""

    def __init__(self, scenario: Scenario, backend: Backend, record: RunRecord,
                 live: LiveView, *, poll_s: float = 0.25,
                 clock: Callable[[], float] = time.time, teardown: Teardown | None = None):
        self.scenario, self.backend, self.record, self.live = scenario, backend, record, live
        self.teardown = teardown or Teardown(live.line)
        self.outcomes: dict[str, ModelOutcome] = {}
        self.current: str | None = None  # the model in progress
        self.models_left = 0
        self.model_started = 0.0
        self.ctx = RunContext(run_id=record.run_dir.name, run_dir=record.run_dir,
                              scenario=scenario)
        self.poll_s, self.clock = poll_s, clock
        local = all(h.endpoint == "local" for h in scenario.hosts)
        self.sampler = SockSampler(enabled=local)
        self.kernel = KernelSampler(None)  # the model's server namespace, once it runs

    def run(self) -> dict[str, ModelOutcome]:
        for index, spec in enumerate(self.scenario.servers, 1):
            self.live.model_start(spec.name, index, len(self.scenario.servers))
            self.current = spec.name
            self.models_left = len(self.scenario.servers) - index
            self.model_started = self.clock()
            self.outcomes[spec.name] = ModelOutcome()
            self.run_model(spec, self.outcomes[spec.name])
        self.current = None
        return self.outcomes

    def where(self, name: bool = True) -> str:
        """Where the run was: "during step 2 of 3 of epoll" (for an interruption)."""
        if self.current is None:
            return "before the first model started" if not self.outcomes else "after the last model"
        done, total = len(self.outcomes[self.current].rows), len(self.scenario.load.steps)
        of = f" of {self.current}" if name else ""
        return f"during step {min(done + 1, total)} of {total}{of}"

    def run_model(self, spec: ServerSpec, outcome: ModelOutcome | None = None) -> ModelOutcome:
        kind = "custom" if spec.is_custom else spec.model
        self.record.set_model(spec.name, kind=kind, limit=None, stopped_at_step=None,
                              exit_code=None, log_tail=None, final=None, error=None,
                              interrupted=False, measured=False)
        outcome = outcome if outcome is not None else ModelOutcome()
        server: ServerHandle | None = None
        load: LoadHandle | None = None
        monitor: ServerMonitor | None = None
        try:
            server = self.backend.start_server(spec, self.ctx)
            self.kernel = KernelSampler(server.net_proc())
            self.kernel.sample(self.clock())
            monitor = ServerMonitor(server, self.ctx.logs_dir / f"{spec.name}.events.jsonl")
            load = self.backend.start_load(server, self.ctx)
            self._poll_steps(spec, server, load, monitor, outcome)
        except KeyboardInterrupt:
            outcome.interrupted = True
            self.teardown.begin()  # from here on the run only tears down (run_scenario ends it)
            raise
        except ResultsError:
            raise  # the run directory cannot take more: end the run, keep what is written
        except BackendError as exc:
            outcome.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one model's failure must not end the run
            log = self.ctx.logs_dir / f"{spec.name}.lab-error.log"
            try:
                log.write_text(traceback.format_exc())
                where = f"traceback in {log}"
            except OSError as write_exc:
                where = f"traceback not saved: {write_exc.strerror or write_exc}"
            outcome.error = f"{type(exc).__name__}: {exc} ({where})"
        finally:
            self._finish_model(spec, server, load, monitor, outcome)
        return outcome

    def _poll_steps(self, spec: ServerSpec, server: ServerHandle, load: LoadHandle,
                    monitor: ServerMonitor, outcome: ModelOutcome) -> None:
        """Poll until the steps are done, a limit or a crash stops the model, or it is stuck."""
        poller = _StepPoller(self, spec, server, load, monitor, outcome)
        try:
            while not poller.tick():
                self._progress(spec, outcome, monitor)
                time.sleep(self.poll_s)
        except KeyboardInterrupt:
            self.teardown.begin()
            poller.flush()  # steps the loadgen finished are measured: keep them
            raise

    def add_row(self, spec: ServerSpec, record: dict[str, Any], monitor: ServerMonitor,
                death: str | None, outcome: ModelOutcome) -> dict[str, Any]:
        """A row from a step record; ``death`` is the cause (lab/run/death.py)
        when the server died before this step ended."""
        row = self._row(spec, record, monitor, death)
        outcome.rows.append(row)
        self.record.add_row(row)
        self.live.step_done(row)
        example = record.get("mismatch_example")
        if example and outcome.mismatch_example is None:
            outcome.mismatch_example = example
            self.record.set_model(spec.name, mismatch_example=example)
            self.live.line(f"  {spec.name}: replies differ from what was sent (from byte "
                           f"{example.get('offset')}: sent {example.get('sent')}, got "
                           f"{example.get('received')})")
        return row

    def step_wait_s(self) -> float:
        """After a crash, how long to wait for the load to close the step in progress."""
        return min(15.0, max(s.hold_s for s in self.scenario.load.steps) + 5.0)

    def _row(self, spec: ServerSpec, record: dict[str, Any], monitor: ServerMonitor,
             death: str | None) -> dict[str, Any]:
        t_end = float(record.get("t_end") or self.clock())
        limit = monitor.first_limit(until=t_end)
        if death is not None:  # its own limit event first, then the evidence of its death
            limit = limit or death
        if limit is None and int((record.get("failures") or {}).get("mismatch") or 0):
            limit = "mismatch"
        if limit is None:
            limit = load_side_limit(record.get("connect_failures"))
        outcome = self.outcomes.get(spec.name)
        previous = outcome.rows[-1].get("t_end") if outcome and outcome.rows else None
        evidence = self.kernel.step(previous if previous is not None else self.model_started,
                                    t_end)
        if limit is None and ((evidence.get("listen_overflows") or 0)
                              or (evidence.get("listen_drops") or 0)):
            limit = "backlog"  # the kernel dropped handshakes: the accept queue was full
        active = self.scenario.load.active_users if self.scenario.load.user == "idle" else (
            int(record.get("target_users") or 0))
        return make_row(spec, record, monitor.stats_at(t_end), limit, self.sampler.at(t_end),
                        active_users=active, evidence=evidence)

    def _progress(self, spec: ServerSpec, outcome: ModelOutcome, monitor: ServerMonitor) -> None:
        step, total = len(outcome.rows), len(self.scenario.load.steps)
        if step >= total:
            return
        stats = monitor.stats[-1] if monitor.stats else None
        rate = None
        if len(monitor.stats) >= 2:
            a, b = monitor.stats[-2], monitor.stats[-1]
            dt = float(b["time"]) - float(a["time"])
            if dt > 0:
                moved = (b.get("bytes_out") or 0) - (a.get("bytes_out") or 0)
                rate = moved / self.scenario.load.message_size / dt
        last = outcome.rows[-1] if outcome.rows else {}
        planned = planned_s(self.scenario)
        left = max(planned - (self.clock() - self.model_started), 0.0)
        self.live.progress(spec.name, step, total, self.scenario.load.steps[step].connections,
                           (stats or {}).get("connections"), rate, last.get("p99_ms"),
                           last.get("error_rate"), eta_model_s=left,
                           eta_run_s=left + planned * self.models_left)

    def _finish_model(self, spec: ServerSpec, server: ServerHandle | None,
                      load: LoadHandle | None, monitor: ServerMonitor | None,
                      outcome: ModelOutcome) -> None:
        """Stop the load and the server; record how the model ended."""
        exit_code = final = tail = None
        try:
            if load is not None:
                load.stop()
            if server is not None:
                died = server.exit_code() is not None
                final = server.stop()
                exit_code = server.exit_code()
                if monitor is not None:
                    monitor.drain()
                    final = final or monitor.final
                if died or outcome.limit == "crash" or outcome.error:
                    tail = server.log_tail()
        except Exception as exc:  # noqa: BLE001 - cleanup() removes what is left
            outcome.error = outcome.error or f"stopping failed: {type(exc).__name__}: {exc}"
        limit = outcome.limit or (monitor.first_limit() if monitor else None)
        if outcome.error and server is None:
            limit = "crash"
        outcome.limit = limit
        if outcome.interrupted:
            self.live.line(f"  {spec.name}: interrupted {self.where(name=False)}")
        else:
            self.live.model_done(spec.name, limit, outcome.stopped_at_step, outcome.error)
        self.record.set_model(spec.name, limit=limit, stopped_at_step=outcome.stopped_at_step,
                              exit_code=exit_code, log_tail=tail, final=final,
                              error=outcome.error, interrupted=outcome.interrupted,
                              measured=outcome.measured)


class _StepPoller:
    """One model's polling state: step records waiting for the server's stats,
    and the rules that end the model."""

    def __init__(self, runner: Runner, spec: ServerSpec, server: ServerHandle,
                 load: LoadHandle, monitor: ServerMonitor, outcome: ModelOutcome):
        self.runner, self.spec, self.server, self.load = runner, spec, server, load
        self.monitor, self.outcome = monitor, outcome
        self.steps_path = runner.ctx.logs_dir / f"{spec.name}.steps.jsonl"
        self.steps_path.touch()
        self.pending: deque[tuple[dict[str, Any], float]] = deque()
        self.budget = expected_duration_s(runner.scenario)
        self.deadline = runner.clock() + self.budget
        self.dead_since: float | None = None  # when the poll first saw it dead
        self.alive_at = runner.clock()  # the last poll that saw it running
        self._cause: str | None = None

    def tick(self) -> bool:
        """One poll; True when this model is done."""
        now = self.runner.clock()
        # Read the exit states first: whatever a process wrote before exiting
        # is then certainly in the polls that follow.
        server_dead = self.server.exit_code() is not None
        if not server_dead:
            self.alive_at = now
        load_done = self.load.exit_code() is not None
        records = self.load.poll_step_results()
        append_jsonl(self.steps_path, records)
        self.pending.extend((r, now) for r in records)
        self.monitor.drain()
        self.runner.sampler.sample(now)
        self.runner.kernel.sample(now)
        if server_dead and self.dead_since is None:
            self.dead_since = now
        if self._emit(now, server_dead, flush=load_done):
            return True
        if load_done and not self.pending:
            done, total = len(self.outcome.rows), len(self.runner.scenario.load.steps)
            if done < total:
                self.outcome.error = (f"the load generator exited ({self.load.exit_code()}) "
                                      f"after {done} of {total} steps:\n"
                                      f"{self.load.log_tail(15)}")
            return True
        if server_dead and not self.pending and \
                now - self.dead_since > self.runner.step_wait_s():
            self._died_mid_step()
            return True
        if now > self.deadline:
            self.outcome.error = f"stuck: the steps did not finish within {self.budget:.0f} s"
            return True
        return False

    def death(self) -> str:
        """Why the server died, once (lab/run/death.py)."""
        if self._cause is None:
            memory = bool(self.spec.limits.memory)
            self._cause = cause(self.monitor.first_limit(), self.server.log_tail(80),
                                self.server.exit_code(), oom_killed=self.server.oom_killed(),
                                memory_limited=memory)
        return self._cause

    def _died_mid_step(self) -> None:
        """The server died and the load never closed the step in progress: the
        row is that step's, with what the server last reported."""
        done = len(self.outcome.rows)
        steps = self.runner.scenario.load.steps
        if done < len(steps):
            record = {"step": done, "target_users": steps[done].connections,
                      "t_end": self.dead_since, "connected": None, "echo_count": 0}
            self.runner.add_row(self.spec, record, self.monitor, self.death(), self.outcome)
        self._stop(self.death(), done)

    def _emit(self, now: float, server_dead: bool, flush: bool) -> bool:
        """Turn step records into rows once the server's stats for them are in
        (or cannot come); True when a row stops the model."""
        while self.pending:
            record, arrived = self.pending[0]
            t_end = float(record.get("t_end") or 0.0)
            stats_in = self.monitor.latest_time >= t_end or now - arrived >= STATS_GRACE_S
            if not (stats_in or server_dead or flush):
                return False
            self.pending.popleft()
            # A step that ended while the server still ran is not where it died,
            # even if its record arrived after the death (the crash belongs to
            # the step in progress: the ramp to the next level, say).
            died = server_dead and t_end > self.alive_at
            death = self.death() if died else None
            row = self.runner.add_row(self.spec, record, self.monitor, death, self.outcome)
            if stops_model(row, died):
                self._stop(row["limit"] or self.death(), row["step"])
                return True
        return False

    def _stop(self, limit: str, step: int) -> None:
        self.outcome.limit, self.outcome.stopped_at_step = limit, step

    def flush(self) -> None:
        while self.pending:
            record = self.pending.popleft()[0]
            self.runner.add_row(self.spec, record, self.monitor, None, self.outcome)


def write_report_safely(run_dir: Path, live: LiveView) -> Path | None:
    """Render the report and the capacity plan (capacity.md/.json at the
    scenario's SLO); a failure here loses nothing, the results are on disk."""
    try:
        from lab.analysis.capacity import write_capacity
        from lab.report.html import write_report
    except ImportError:
        return None
    try:
        report = write_report(run_dir)
        write_capacity(run_dir)
        return report
    except Exception as exc:  # noqa: BLE001 - the results are on disk already
        live.line(f"iolab: the report could not be written ({type(exc).__name__}: {exc}); "
                  f"the results are in {run_dir}")
        return None


def run_scenario(scenario: Scenario, backend: Backend, out: Path, *,
                 live: LiveView | None = None, poll_s: float = 0.25,
                 report: Callable[[Path, LiveView], Path | None] = write_report_safely,
                 ) -> tuple[Path, dict[str, ModelOutcome]]:
    """Run every server of ``scenario``; returns the run directory and outcomes.

    The run directory and its run.json (``status: starting``) exist before
    the backend does anything; an unusable ``--out`` is an InputError then.
    Whatever ends the run — its end, Ctrl-C, SIGTERM, a full disk, a backend
    failure — teardown is one shielded phase (:class:`lab.teardown.Teardown`):
    stop and remove everything, record how the run ended, write the report.
    Raises :class:`Interrupted`/:class:`Terminated` on SIGINT/SIGTERM,
    :class:`ResultsError` when results could not be written, and
    :class:`BackendError` when no server could be measured.
    """
    live = live or LiveView()
    run_dir = create_run_dir(out, scenario.name)
    record = RunRecord(run_dir, scenario, backend.name)
    live.line(f"iolab: run {scenario.name} on the {backend.name} backend -> {run_dir}")
    teardown = Teardown(live.line)
    runner = Runner(scenario, backend, record, live, poll_s=poll_s, teardown=teardown)
    ended: BaseException | None = None
    try:
        record.start(backend.unapplied_settings(scenario), backend.describe_hosts(),
                     git_commit())
        for note in record.data["unapplied"]:
            live.line(f"iolab: not applied on {backend.name}: {note}")
        runner.run()
    except BaseException as exc:  # noqa: BLE001 - recorded and re-raised after teardown
        teardown.begin()
        ended = exc
    interrupted = isinstance(ended, KeyboardInterrupt)
    where = runner.where()
    with teardown:  # ends the shield begun by an interruption, or begins it
        _close(backend, record, live, report, run_dir, ended)
    outcomes = runner.outcomes
    if interrupted:
        raise interruption(ended, f"interrupted {where}; what was measured is kept in "
                                  f"{run_dir}") from None
    if ended is not None:
        raise ended
    if not any(o.rows for o in outcomes.values()):
        first = next((o.error for o in outcomes.values() if o.error), "no step finished")
        raise BackendError(f"no server could be measured; the first error was: {first}")
    return run_dir, outcomes


def _close(backend: Backend, record: RunRecord, live: LiveView,
           report: Callable[[Path, LiveView], Path | None], run_dir: Path,
           ended: BaseException | None) -> None:
    """Teardown: every item is attempted whatever the one before raised."""
    problems: list[str] = []
    problems += attempt("cleanup", backend.cleanup, problems) or []
    live.close()
    if isinstance(ended, KeyboardInterrupt):
        status = "interrupted"
    else:
        status = "complete" if ended is None else "failed"
    attempt("recording the end of the run",
            lambda: record.finish(complete=status == "complete",
                                  interrupted=status == "interrupted", status=status), problems)
    if not isinstance(ended, ResultsError):  # a disk that failed once gets no report
        attempt("writing the report", lambda: report(run_dir, live), problems)
    for problem in problems:
        live.line(f"iolab: teardown: {problem}")
