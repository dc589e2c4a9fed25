"""The run loop: for each server a fresh server, then the load's steps.

Per server it starts the server (process or container) and the Locust
master with its workers, then polls both: the server's JSON events are
appended to ``logs/<server>.events.jsonl`` as they arrive, the loadgen's step
records to ``logs/<server>.steps.jsonl``, and each finished step becomes a
row in ``steps.csv``/``run.json`` at once (:mod:`lab.results.writer`). When a step
shows that a limit stopped the server (it reported one and the load could
not reach its target, or it died), the loop names the limit, records the log
tail and moves on to the next server instead of aborting the run.

The rules of one model's steps (when a record becomes a row, what ends a
model) are in :mod:`lab.run.poller`. The loop only talks to
:mod:`lab.backends.base`'s interface.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from contract.defaults import USER_CHURN, USER_IDLE
from contract.limits import CRASH
from lab.analysis.connect import finding as connect_finding
from lab.analysis.connect import limit_words
from lab.backends.base import Backend, LoadHandle, RunContext, ServerHandle
from lab.errors import BackendError, ResultsError, interruption
from lab.results.columns import step_of
from lab.results.groups import append_groups
from lab.results.writer import RunRecord, create_run_dir, make_row
from lab.run.accept_queue import AcceptQueueWatch, with_overflows
from lab.run.conntrack_room import wait_for_room
from lab.run.generator import GeneratorWatch
from lab.run.hostcpu import HostCpuSampler
from lab.run.hostwatch import HostGone, HostWatch
from lab.run.kernel import KernelSampler
from lab.run.live import LiveView
from lab.run.load_ports import LoadPorts
from lab.run.monitors import ServerMonitor, SockSampler
from lab.run.outcome import ModelOutcome, merged
from lab.run.poller import StepPoller, planned_s
from lab.run.verdict import step_limit
from lab.scenario.types import Scenario, ServerSpec
from lab.teardown import Teardown, attempt
from lab.versions import git_commit


class Runner:
    """Runs one scenario on one backend into one run directory."""

    def __init__(self, scenario: Scenario, backend: Backend, record: RunRecord,
                 live: LiveView, *, poll_s: float = 0.25,
                 clock: Callable[[], float] = time.time, teardown: Teardown | None = None):
        self.scenario, self.backend, self.record, self.live = scenario, backend, record, live
        self.teardown = teardown or Teardown(live.line)
        self.outcomes: dict[str, ModelOutcome] = {}  # the pass in progress, per model
        self.passes: dict[str, list[ModelOutcome]] = {}  # every pass, per model
        self.current: str | None = None  # the model in progress
        self.models_left = 0
        self.model_started = 0.0
        self.ctx = RunContext(run_id=record.run_dir.name, run_dir=record.run_dir,
                              scenario=scenario)
        self.poll_s, self.clock = poll_s, clock
        self.sampler = SockSampler(enabled=False)  # the model's server host, once it runs
        self.kernel = KernelSampler(None)  # the model's server namespace, once it runs
        self.hostcpu = HostCpuSampler(enabled=False)  # the model's server host, once it runs
        self.queue = AcceptQueueWatch(None, None)  # its listeners' accept queue, likewise
        self.ports = LoadPorts([], 0)  # the load's own sockets, once it runs
        self.watch: GeneratorWatch | None = None  # the model's load generator, once it runs
        self.hosts = HostWatch(backend.host_checks)  # hosts that stop answering mid-step

    def run(self) -> dict[str, ModelOutcome]:
        """Every model, ``load.repeat`` times, interleaved (A B C A B C ...) so
        that drift on a shared machine hits every model alike."""
        servers, repeats = self.scenario.servers, self.scenario.load.repeat
        total, done = len(servers) * repeats, 0
        for repeat in range(repeats):
            self.ctx = replace(self.ctx, repeat=repeat)
            for spec in servers:
                done += 1
                self.live.model_start(spec.name, done, total,
                                      f"(repeat {repeat + 1} of {repeats})" if repeats > 1
                                      else "")
                self.current = spec.name
                self.models_left = total - done
                self.model_started = self.clock()
                self.outcomes[spec.name] = ModelOutcome()
                self.passes.setdefault(spec.name, []).append(self.outcomes[spec.name])
                self.run_model(spec, self.outcomes[spec.name])
        self.current = None
        return self.results()

    def results(self) -> dict[str, ModelOutcome]:
        """One outcome per model over all its passes (rows of every repeat)."""
        return {name: merged(passes) for name, passes in self.passes.items()}

    def where(self, name: bool = True) -> str:
        """Where the run was: "during epoll step 1 of 0-2" (for an interruption)."""
        if self.current is None:
            return "before the first model started" if not self.outcomes else "after the last model"
        done, total = len(self.outcomes[self.current].rows), len(self.scenario.load.steps)
        model = f"{self.current} " if name else ""
        return f"during {model}{step_of(min(done, total - 1), total)}"

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
            if self.backend.conntrack_here:
                wait_for_room(self.scenario.max_connections, self.live.line)
            server = self.backend.start_server(spec, self.ctx)
            # This machine's /proc/net/sockstat is the server host's only when the
            # server runs here: the backend decides, by the one marker test.
            self.sampler = SockSampler(enabled=self.backend.on_this_machine(spec.host))
            self.kernel = KernelSampler(server.net_proc())
            self.hostcpu = HostCpuSampler(enabled=self.backend.on_this_machine(spec.host))
            self.kernel.sample(self.clock())
            self.queue = AcceptQueueWatch(server.net_proc(), server.ready.get("port")).start()
            monitor = ServerMonitor(
                server, self.ctx.logs_dir / f"{self.ctx.stem(spec.name)}.events.jsonl")
            load = self.backend.start_load(server, self.ctx)
            self.ports = LoadPorts(load.net_procs(), server.target_port)
            self.watch = GeneratorWatch(load, self.live.line)
            self._poll_steps(spec, server, load, monitor, outcome)
        except KeyboardInterrupt:
            outcome.interrupted = True
            self.teardown.begin()  # from here on the run only tears down (run_scenario ends it)
            raise
        except (ResultsError, HostGone):
            raise  # the run directory cannot take more, or a host is gone: end the run
        except BackendError as exc:
            outcome.error = str(exc)
        except Exception as exc:  # noqa: BLE001 - one model's failure must not end the run
            log = self.ctx.logs_dir / f"{self.ctx.stem(spec.name)}.lab-error.log"
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
        poller = StepPoller(
            spec, self.scenario, server, load, monitor, outcome,
            steps_path=self.ctx.logs_dir / f"{self.ctx.stem(spec.name)}.steps.jsonl",
            clock=self.clock, sample=self._sample, watch=self.watch, hosts=self.hosts,
            add_row=lambda record, death: self.add_row(spec, record, monitor, death, outcome))
        try:
            while not poller.tick():
                self._progress(spec, outcome, monitor)
                time.sleep(self.poll_s)
        except KeyboardInterrupt:
            self.teardown.begin()
            poller.flush()  # steps the loadgen finished are measured: keep them
            raise
        finally:
            self.hosts.stop()

    def _sample(self, now: float) -> None:
        """What records while a step runs: the host's TCP socket memory, the
        server namespace's kernel counters."""
        self.sampler.sample(now)
        self.kernel.sample(now)
        self.ports.sample(now)
        self.hostcpu.sample(now)

    def add_row(self, spec: ServerSpec, record: dict[str, Any], monitor: ServerMonitor,
                death: str | None, outcome: ModelOutcome) -> dict[str, Any]:
        """A row from a step record; ``death`` is the cause (lab/run/death.py)
        when the server died before this step ended."""
        row = self._row(spec, record, monitor, death)
        outcome.rows.append(row)
        self.record.add_row(row)
        append_groups(self.record.run_dir, spec.name, record, self.ctx.repeat)
        self.live.step_done(row, connect_finding(row, self.scenario.slo),
                            churn=self.scenario.load.user == USER_CHURN)
        example = record.get("mismatch_example")
        if example and outcome.mismatch_example is None:
            outcome.mismatch_example = example
            self.record.set_model(spec.name, mismatch_example=example)
            self.live.line(f"  {spec.name}: replies differ from what was sent (from byte "
                           f"{example.get('offset')}: sent {example.get('sent')}, got "
                           f"{example.get('received')})")
        return row

    def _row(self, spec: ServerSpec, record: dict[str, Any], monitor: ServerMonitor,
             death: str | None) -> dict[str, Any]:
        t_end = float(record.get("t_end") or self.clock())
        outcome = self.outcomes.get(spec.name)
        previous = outcome.rows[-1].get("t_end") if outcome and outcome.rows else None
        start = previous if previous is not None else self.model_started
        kernel = self.kernel.step(start, t_end)
        queue = self.queue.step(record.get("t_connect_start") or start,
                                record.get("t_connect_end") or t_end)
        evidence = {**kernel, **self.ports.step(start, t_end),
                    **with_overflows(queue, kernel.get("listen_overflows"))}
        active = self.scenario.load.active_users if self.scenario.load.user == USER_IDLE else (
            int(record.get("target_users") or 0))
        limit = step_limit(event=monitor.first_limit(until=t_end), death=death,
                           lost=self.watch.limit(record) if self.watch else None,
                           record=record, evidence=evidence, echoing=active,
                           churn=self.scenario.load.user == USER_CHURN)
        # The hold window: what CPU per message and the host's share are measured on.
        t_hold = float(record.get("t_hold") or t_end - float(record.get("hold_s") or 0.0))
        hold_cpu = {"server_hold_cpu_s": monitor.cpu_over(t_hold, t_end),
                    "host_busy_s": self.hostcpu.between(t_hold, t_end)}
        return make_row(spec, record, monitor.stats_at(t_end), limit, self.sampler.at(t_end),
                        active_users=active, evidence=evidence, repeat=self.ctx.repeat,
                        hold_cpu=hold_cpu)

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
        self.queue.stop()
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
                if died or outcome.limit == CRASH or outcome.error:
                    tail = server.log_tail()
        except Exception as exc:  # noqa: BLE001 - cleanup() removes what is left
            outcome.error = outcome.error or f"stopping failed: {type(exc).__name__}: {exc}"
        limit = outcome.limit or (monitor.first_limit() if monitor else None)
        if outcome.error and server is None:
            limit = CRASH
        outcome.limit = limit
        if outcome.interrupted:
            self.live.line(f"  {spec.name}: interrupted {self.where(name=False)}")
        else:
            self.live.model_done(spec.name, limit and limit_words(limit),
                                 outcome.stopped_at_step, outcome.error)
        this = {"limit": limit, "stopped_at_step": outcome.stopped_at_step,
                "exit_code": exit_code, "log_tail": tail, "final": final, "error": outcome.error,
                "interrupted": outcome.interrupted, "measured": outcome.measured,
                "measured_by": monitor.measured_by() if monitor else None,
                "workers_lost": list(self.watch.lost.values()) if self.watch else [],
                "oom_evidence": server.oom_evidence() if server is not None else None}
        if this["oom_evidence"]:
            self.live.line(f"  {spec.name}: killed by the OOM killer: {this['oom_evidence']}")
        self.watch = None
        if self.scenario.load.repeat == 1:
            self.record.set_model(spec.name, **this)
            return
        # Repeats: each pass in ``repeats``; the top level speaks for all of them.
        passes = [*self.record.data["models"][spec.name].get("repeats", []),
                  {"repeat": self.ctx.repeat, **this}]
        whole = merged(self.passes[spec.name])
        self.record.set_model(spec.name, **{
            **this, "limit": whole.limit, "stopped_at_step": whole.stopped_at_step,
            "error": whole.error, "interrupted": whole.interrupted, "measured": whole.measured,
            "workers_lost": [w for p in passes for w in p["workers_lost"]], "repeats": passes})


def write_report_safely(run_dir: Path, live: LiveView) -> Path | None:
    """Render the report and the capacity plan (capacity.md/.json at the
    scenario's SLO); a failure here loses nothing, the results are on disk."""
    try:
        from lab.analysis.plan_writer import write_capacity
        from lab.report.html import write_report
    except ImportError:
        return None
    try:
        report = write_report(run_dir)
        write_capacity(run_dir)
        return report
    except Exception as exc:  # noqa: BLE001 - the results are on disk already
        live.line(f"iolab: the report could not be written ({type(exc).__name__}: {exc}); "
                  f"the results are in {run_dir}; write it later with `run-lab report "
                  f"{run_dir}` and `run-lab capacity {run_dir}`")
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
    try:
        run_dir = create_run_dir(out, scenario.name)
        record = RunRecord(run_dir, scenario, backend.name)
    except BaseException:  # an unusable --out: nothing ran, but the backend exists
        backend.cleanup()
        raise
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
    outcomes = runner.results()
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
