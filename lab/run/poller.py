"""One model's steps as they finish: when a step record becomes a row, and
the rules that end a model (a limit that kept the load below its target, a
death, replies that are not the echo, a stuck load).

A step record becomes a row once the server's stats for the step's end are
in (or cannot come: ``STATS_GRACE_S``). A server's death belongs to the step
in progress when it died: a step that ended while the server still ran keeps
no limit, even if its record arrives after the death; the step in progress
gets a row even when the load never closes it (``lab/run/death.py`` names the
cause from evidence).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from contract.limits import CRASH, GENERATOR_LIMITS, MISMATCH, WORKER_LOST
from lab.backends.base import LoadHandle, ServerHandle
from lab.run.death import cause
from lab.run.generator import GeneratorWatch
from lab.run.hostwatch import HostGone, HostWatch
from lab.run.monitors import ServerMonitor, append_jsonl
from lab.run.outcome import ModelOutcome
from lab.scenario.types import Scenario, ServerSpec

STATS_GRACE_S = 3.0  # how long a finished step waits for the server's next stats event
STARTUP_SLACK_S = 60.0  # load start-up (workers connecting) before the first step
STEP_SLACK_S = 30.0  # per step, on top of ramp + hold, before a model is declared stuck


def planned_s(scenario: Scenario) -> float:
    """Ramp + hold of every step: how long one model's load runs when all goes to plan."""
    total, previous = 0.0, 0
    for step in scenario.load.steps:
        total += (step.connections - previous) / scenario.load.spawn_rate + step.hold_s
        previous = step.connections
    return total


def expected_duration_s(scenario: Scenario) -> float:
    """Ramp + hold of every step, plus slack (and the settle's longest wait for
    the ramp's last connects): past this a model is stuck."""
    return STARTUP_SLACK_S + planned_s(scenario) + \
        (STEP_SLACK_S + scenario.load.connect_timeout_s) * len(scenario.load.steps)


def step_wait_s(scenario: Scenario) -> float:
    """After a crash, how long to wait for the load to close the step in progress.
    (The settle, loadgen/collect.py, does not lengthen it: a dead server's
    connects are refused at once, which ends the settle.)"""
    return min(15.0, max(s.hold_s for s in scenario.load.steps) + 5.0)


def stops_model(row: dict[str, Any], server_dead: bool) -> bool:
    """A step ends a model when its server died, when its replies were not the
    bytes sent (more steps would measure errors, not capacity), or when a
    limit kept the load below the step's target."""
    if server_dead or row.get("limit") in (CRASH, MISMATCH):
        return True
    if row.get("limit") in GENERATOR_LIMITS:  # the remaining workers carry on (run/generator.py)
        return False
    return bool(row.get("limit")) and (row.get("connected") or 0) < row["target_connections"]


def served_whole(record: dict[str, Any]) -> bool:
    """The load's own evidence that the server lived through the step: every
    target user still connected at the step's end (a dead server's close is
    noticed at once, loadgen/client.py) and no failure in the hold. The poll
    that first sees a death can come a poll interval after the step's end; a
    server killed by the next ramp, which starts as soon as the step ends,
    then looked as if it died in a step it served whole."""
    target, connected = record.get("target_users"), record.get("connected")
    return (bool(target) and connected is not None and connected >= target
            and record.get("hold_failures") == {})


class StepPoller:
    """One model's polling state: step records waiting for the server's stats,
    and the rules that end the model.

    It sees the run only through what it is given: ``clock()`` (the time of a
    poll), ``sample(now)`` (the samplers that record while a step runs),
    ``add_row(record, death)`` (a step record becomes a recorded row; ``death``
    is the server's cause of death when it died before the step ended) and
    ``watch`` (the load generator's lost workers, ``lab/run/generator.py``)."""

    def __init__(self, spec: ServerSpec, scenario: Scenario, server: ServerHandle,
                 load: LoadHandle, monitor: ServerMonitor, outcome: ModelOutcome, *,
                 steps_path: Path, clock: Callable[[], float],
                 sample: Callable[[float], None],
                 add_row: Callable[[dict[str, Any], str | None], dict[str, Any]],
                 watch: GeneratorWatch | None = None, hosts: HostWatch | None = None):
        self.spec, self.scenario, self.server, self.load = spec, scenario, server, load
        self.monitor, self.outcome = monitor, outcome
        self.clock, self.sample, self.add_row, self.watch = clock, sample, add_row, watch
        self.steps_path = steps_path
        self.steps_path.touch()
        self.pending: deque[tuple[dict[str, Any], float]] = deque()
        self.budget = expected_duration_s(scenario)
        self.deadline = clock() + self.budget
        self.dead_since: float | None = None  # when the poll first saw it dead
        self.alive_at = clock()  # the last poll that saw it running
        self._cause: str | None = None
        self.hosts = hosts  # hosts that stop answering (lab/run/hostwatch.py)
        if hosts is not None:
            hosts.start()

    def tick(self) -> bool:
        """One poll; True when this model is done."""
        now = self.clock()
        self._hosts_gone(now)  # before any call that a silent host would hold up
        # Read the exit states first: whatever a process wrote before exiting
        # is then certainly in the polls that follow.
        server_code = self.server.exit_code()
        server_dead = server_code is not None
        if server_code == -1:  # Docker: its container, or its daemon, did not answer
            self._hosts_gone(now, confirm=self.spec.host)
        if not server_dead:
            self.alive_at = now
        load_code = self.load.exit_code()
        load_done = load_code is not None
        if load_code == -1:
            self._hosts_gone(now, confirm=self.load.master_host)
        records = self.load.poll_step_results()
        append_jsonl(self.steps_path, records)
        self.pending.extend((r, now) for r in records)
        self.monitor.drain()
        self.sample(now)
        if server_dead and self.dead_since is None:
            self.dead_since = now
        if self._emit(now, server_dead, flush=load_done):
            return True
        done, total = len(self.outcome.rows), len(self.scenario.load.steps)
        if done >= total and not self.pending:
            # Every step has its row: the model is measured. The load is stopped
            # now (``Runner._finish_model``) rather than waited for: Locust's
            # shape ends only on its next one-second tick, and its master then
            # takes another second or two to shut down.
            return True
        if load_done and not self.pending:
            if done < total and not self._master_lost(done, now):
                self.outcome.error = (f"the load generator exited ({self.load.exit_code()}) "
                                      f"after {done} of {total} steps:\n"
                                      f"{self.load.log_tail(15)}")
            return True
        if server_dead and not self.pending and \
                now - self.dead_since > step_wait_s(self.scenario):
            self._died_mid_step()
            return True
        if now > self.deadline:
            self.outcome.error = f"stuck: the steps did not finish within {self.budget:.0f} s"
            return True
        return False

    def _hosts_gone(self, now: float, confirm: str | None = None) -> None:
        """A host of this model that stopped answering ends the model and the
        run (HostGone, exit 1): a load host's is the step's ``worker_lost``,
        the server's host's is the model's error and no limit of the server.
        ``confirm``: a host a call just failed on, checked at once."""
        if self.hosts is None:
            return
        if confirm:
            self.hosts.confirm(confirm)
        gone = self.hosts.gone()
        if not gone:
            return
        step = min(len(self.outcome.rows), len(self.scenario.load.steps) - 1)
        record = {"step": step, "target_users": self.scenario.load.steps[step].connections,
                  "t_end": now, "connected": None, "echo_count": 0}
        server_host = gone.get(self.spec.host)
        if server_host is not None and not server_host.hits("server"):
            server_host = None  # only load containers there (a paused worker)
        said = "; ".join(g.sentence() for g in gone.values())
        if server_host is None and self.watch is not None:
            record["workers_lost"] = [self.watch.host_lost(g.host, g.sentence())
                                      for g in gone.values()]
        if len(self.outcome.rows) < len(self.scenario.load.steps):
            row = self.add_row(record, None)
            if server_host is None:
                self._stop(row["limit"] or WORKER_LOST, step)
        if server_host is not None:
            self.outcome.error = (f"{server_host.sentence()}: the server's host, not a limit "
                                  "of the server")
        self.pending.clear()
        raise HostGone(f"{said}; the run ends here")

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
        steps = self.scenario.load.steps
        if done < len(steps):
            record = {"step": done, "target_users": steps[done].connections,
                      "t_end": self.dead_since, "connected": None, "echo_count": 0}
            self.add_row(record, self.death())
        self._stop(self.death(), done)

    def _master_lost(self, step: int, now: float) -> bool:
        """A master killed before the last step: the step in progress is
        ``worker_lost`` (lab/run/generator.py) and the model's load is over."""
        watch = self.watch
        lost = watch.master_lost(step) if watch else None
        if lost is None:
            return False
        record = {"step": step, "target_users": self.scenario.load.steps[step].connections,
                  "t_end": now, "connected": None, "echo_count": 0,
                  "workers_lost": [{"id": lost["worker"], "host": lost["host"]}]}
        row = self.add_row(record, None)
        self._stop(row["limit"] or WORKER_LOST, step)
        return True

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
            died = server_dead and t_end > self.alive_at and not served_whole(record)
            death = self.death() if died else None
            row = self.add_row(record, death)
            if stops_model(row, died):
                self._stop(row["limit"] or self.death(), row["step"])
                return True
        return False

    def _stop(self, limit: str, step: int) -> None:
        self.outcome.limit, self.outcome.stopped_at_step = limit, step

    def flush(self) -> None:
        while self.pending:
            record = self.pending.popleft()[0]
            self.add_row(record, None)
