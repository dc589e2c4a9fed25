"""One model's step rules on their own: StepPoller driven by a hand clock and
callbacks, no Runner, no sleeping."""

from __future__ import annotations

from lab_fakes import T0, stats, step_record

from lab.backends.base import LoadHandle, ServerHandle
from lab.run.monitors import ServerMonitor
from lab.run.outcome import ModelOutcome
from lab.run.poller import StepPoller, expected_duration_s, step_wait_s
from lab.scenario.loader import parse_scenario

SCENARIO = parse_scenario("servers: [epoll]\nload: {hold: 5s, steps: [200, 1200]}\n",
                          "fake.yaml")


class Clock:
    def __init__(self, t: float = T0):
        self.t = t

    def __call__(self) -> float:
        return self.t


class Server(ServerHandle):
    """A server whose events and death the test decides."""

    def __init__(self):
        self.events: list[dict] = []
        self.dead = False

    def poll_events(self):
        new, self.events = self.events, []
        return new

    def exit_code(self):
        return -9 if self.dead else None

    def stop(self, timeout: float = 10.0):
        return None

    def log_tail(self, lines: int = 40) -> str:
        return "killed"


class Load(LoadHandle):
    """A load whose step records and exit the test decides."""

    def __init__(self):
        self.records: list[dict] = []
        self.exit: int | None = None

    def poll_step_results(self):
        new, self.records = self.records, []
        return new

    def exit_code(self):
        return self.exit

    def stop(self, timeout: float = 15.0) -> None:
        pass

    def log_tail(self, lines: int = 40) -> str:
        return "master log"


def poller_for(tmp_path, clock: Clock):
    server, load, outcome = Server(), Load(), ModelOutcome()
    monitor = ServerMonitor(server, tmp_path / "events.jsonl")
    calls: dict[str, list] = {"rows": [], "samples": []}

    def add_row(record, death):
        row = {"step": record["step"], "target_connections": record["target_users"],
               "connected": record.get("connected"), "limit": death}
        calls["rows"].append((record["step"], death))
        outcome.rows.append(row)
        return row

    poller = StepPoller(SCENARIO.servers[0], SCENARIO, server, load, monitor, outcome,
                        steps_path=tmp_path / "steps.jsonl", clock=clock,
                        sample=calls["samples"].append, add_row=add_row)
    return poller, server, load, outcome, calls


def test_records_become_rows_once_the_servers_stats_are_in(tmp_path):
    clock = Clock()
    poller, server, load, outcome, calls = poller_for(tmp_path, clock)
    load.records = [step_record(0, 200, 200)]  # t_end T0 + 10
    server.events = [stats(T0 + 9.9, 200)]
    clock.t = T0 + 10.1
    assert not poller.tick()
    assert calls["rows"] == []  # the server's stats for the step's end are not in yet
    server.events = [stats(T0 + 10.4, 200)]
    clock.t = T0 + 10.6
    assert not poller.tick()
    assert calls["rows"] == [(0, None)]
    load.records, load.exit = [step_record(1, 1200, 1200)], 0
    clock.t = T0 + 20.2
    assert poller.tick()  # the load is done: the last record is flushed without waiting
    assert calls["rows"] == [(0, None), (1, None)]
    assert calls["samples"] == [T0 + 10.1, T0 + 10.6, T0 + 20.2]
    assert outcome.limit is None and outcome.error is None
    assert (tmp_path / "steps.jsonl").read_text().count("\n") == 2


def test_a_server_that_dies_mid_step_gets_that_steps_row_after_the_wait(tmp_path):
    clock = Clock()
    poller, server, load, outcome, calls = poller_for(tmp_path, clock)
    load.records = [step_record(0, 200, 200)]
    server.events = [stats(T0 + 10.4, 200)]
    clock.t = T0 + 10.5
    assert not poller.tick()
    assert calls["rows"] == [(0, None)]
    server.events = [{"event": "limit", "time": T0 + 12.0, "kind": "EMFILE", "fd": 1023,
                      "connections": 1019}]
    server.dead = True
    clock.t = T0 + 12.5
    assert not poller.tick()  # the load may still close the step in progress
    clock.t += step_wait_s(SCENARIO) + 0.1  # it never does
    assert poller.tick()
    assert calls["rows"] == [(0, None), (1, "EMFILE")]  # the death is step 1's, by its evidence
    assert (outcome.limit, outcome.stopped_at_step) == ("EMFILE", 1)


def test_a_load_that_never_finishes_is_stuck_past_the_budget(tmp_path):
    clock = Clock()
    poller, _server, _load, outcome, calls = poller_for(tmp_path, clock)
    clock.t = T0 + expected_duration_s(SCENARIO) - 1
    assert not poller.tick()
    clock.t = T0 + expected_duration_s(SCENARIO) + 1
    assert poller.tick()
    assert outcome.error.startswith("stuck: ") and calls["rows"] == []


def test_a_death_seen_after_a_step_it_served_whole_belongs_to_the_next_ramp(tmp_path):
    """The next ramp starts as the step ends (loadgen StepController.start_ramp):
    a server it kills can be seen dead by the first poll after the step's end,
    before its record is in. Every user still connected and no hold failure:
    the step was served whole, and the death is the next step's."""
    clock = Clock()
    poller, server, load, outcome, calls = poller_for(tmp_path, clock)
    clock.t = T0 + 9.9  # the last poll that saw it alive: before the step's end (T0 + 10)
    assert not poller.tick()
    whole = {**step_record(0, 200, 200), "hold_failures": {}}
    load.records, server.dead = [whole], True
    clock.t = T0 + 10.1
    assert not poller.tick()
    assert calls["rows"] == [(0, None)]
    clock.t += step_wait_s(SCENARIO) + 0.1
    assert poller.tick()
    assert calls["rows"] == [(0, None), (1, "crash")]


def test_a_step_the_load_saw_break_is_where_the_server_died(tmp_path):
    clock = Clock()
    poller, server, load, outcome, calls = poller_for(tmp_path, clock)
    clock.t = T0 + 9.9
    assert not poller.tick()
    broken = {**step_record(0, 200, 150), "hold_failures": {"ECONNRESET": 50}}
    load.records, server.dead = [broken], True
    clock.t = T0 + 10.1
    assert poller.tick()
    assert calls["rows"] == [(0, "crash")]
