"""The load generator's own health during one model: lost workers, a lost
master, and the sentence that tells the user.

Two views of a lost worker are combined, because each misses cases the other
sees:

- the **loadgen's**: the master asks every worker for its share at each step
  end; ``workers_alive < workers_expected`` (or a non-empty
  ``workers_lost``) in the step record means a worker did not answer — dead,
  frozen or cut off from the master (loadgen/collect.py);
- the **backend's**: a worker process or container that has exited while the
  master still runs (:meth:`lab.backends.base.LoadHandle.lost_workers`),
  which names it, its host and its log tail.

Either makes the step ``worker_lost``: a finding about the measurement, not
a wall of the server (contract/limits.py). The remaining workers carry on —
Locust's master spreads the next step's users over the workers it still has
— so later steps are measured too, each marked ``worker_lost`` and
client-bound as long as fewer workers report than were planned; the report
draws them hollow and the capacity plan leaves them out.

The master's death before the last step ends the model's load. If a signal
killed it (SIGKILL, an OOM kill), the step in progress is ``worker_lost``
too, named by its host; a master that exited by itself is a loadgen failure,
reported as the model's error with its log tail.

A worker the kernel's OOM killer ended is ``worker_lost`` with that evidence
(Docker's ``State.OOMKilled``, or the kernel's log line for a local worker's
SIGKILL): the load generator ran out of memory, not the server. A load host
that stopped answering (``lab/run/hostwatch.py``) is ``worker_lost`` for
every worker there, with what the watch saw; the backend's view is not asked
then (its calls to that host would wait for their timeouts).
"""

from __future__ import annotations

import signal
from typing import Any

from contract.limits import WORKER_LOST
from lab.backends.base import LoadHandle, LostWorker


def lost_in_record(record: dict[str, Any]) -> bool:
    """The loadgen's view: a worker of this step did not report."""
    alive, expected = record.get("workers_alive"), record.get("workers_expected")
    if record.get("workers_lost"):
        return True
    return isinstance(alive, int) and isinstance(expected, int) and alive < expected


def killed(exit_code: int | None) -> bool:
    """A process ended by a signal: negative for a local child (Popen), 128+N
    for a container's init (Docker)."""
    if exit_code is None:
        return False
    return exit_code < 0 or exit_code in (128 + signal.SIGKILL, 128 + signal.SIGTERM)


class GeneratorWatch:
    """One model's load: which workers were lost, told once each."""

    def __init__(self, load: LoadHandle, say: Any) -> None:
        self.load, self.say = load, say
        self.lost: dict[str, dict[str, Any]] = {}  # name -> what run.json keeps
        self.hosts_gone: list[LostWorker] = []  # load hosts that stopped answering

    def limit(self, record: dict[str, Any]) -> str | None:
        """``worker_lost`` when this step lost a worker (either view), else None."""
        gone = list(self.hosts_gone) or self.load.lost_workers()
        if not gone:  # no exit seen by the backend: the loadgen's names are all there is
            gone = [LostWorker(str(e.get("id", "?")), str(e.get("host", "?")), None, "")
                    for e in record.get("workers_lost") or [] if isinstance(e, dict)]
        for worker in gone:
            self._note(worker, record)
        return WORKER_LOST if gone or lost_in_record(record) else None

    def master_lost(self, step: int) -> dict[str, Any] | None:
        """The master's death by a signal, as a lost worker of ``step``; None
        when it exited by itself (an error of the loadgen, not a loss)."""
        code = self.load.exit_code()
        if not killed(code):
            return None
        master = LostWorker("the Locust master", self.load.master_host, code,
                            self.load.log_tail(12), self.load.master_oom_evidence())
        self._note(master, {"step": step})
        return self.lost[master.name]

    def host_lost(self, host: str, seen: str) -> dict[str, Any]:
        """A load host that stopped answering (``seen``: the watch's sentence),
        as the step record's lost worker; the step's row is then ``worker_lost``."""
        self.hosts_gone.append(LostWorker(f"the load generator on host {host}", host, None, "",
                                          seen))
        return {"id": self.hosts_gone[-1].name, "host": host}

    def _note(self, worker: LostWorker, record: dict[str, Any]) -> None:
        if worker.name in self.lost:
            return
        self.lost[worker.name] = {"step": record.get("step"), "worker": worker.name,
                                  "host": worker.host, "exit_code": worker.exit_code,
                                  "log_tail": worker.log_tail, "evidence": worker.evidence or None}
        tail = worker.log_tail.strip().splitlines()[-3:]
        self.say(f"  load worker lost in step {record.get('step')}: {worker.describe()}; "
                 "the step measures the load, not the server, and is left out of the plan"
                 + "".join(f"\n    | {line}" for line in tail))
