"""``run-lab SCENARIO [--backend auto|docker|local] [--out DIR] [--models a,b] [--ui]``:
run every server of a scenario through every step (or, with ``--ui``, start them
and the Locust web UI)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from contract.defaults import USER_CHURN
from lab import RESULTS
from lab.analysis import metrics as m
from lab.cli.parser import PROG, LabParser
from lab.errors import InputError, Interrupted
from lab.run.live import LiveView
from lab.scenario.loader import load_scenario, select_servers
from lab.scenario.types import Scenario

REPORT_FILES = ("report.html", "capacity.md")  # what the end of a run writes after the rows

def _parser() -> LabParser:
    p = LabParser(description="Run an iolab scenario: every server, every step.",
                  usage=f"{PROG} SCENARIO [--backend B] [--out DIR] [--models a,b] [--ui]\n"
                        f"       [--web-host ADDR] [--web-port PORT]\n"
                        f"       {PROG} {{validate,doctor,clean,report,capacity,compare}} ...\n"
                        f"       {PROG} help [COMMAND] | --version",
                  epilog="Other commands: validate, doctor, clean, report, capacity, compare "
                         f"(`{PROG} help COMMAND`). Exit codes: 0 every model measured, 1 a "
                         "model could not be measured or the run failed, 2 bad input, 130 "
                         "SIGINT, 143 SIGTERM.")
    p.add_argument("scenario", type=Path, help="scenario YAML (e.g. lab.yaml)")
    p.add_argument("--backend", choices=("auto", "docker", "local"),
                   help="where servers and load run (default: the scenario's, else auto)")
    p.add_argument("--out", type=Path, default=RESULTS,
                   help="where run directories are created (default: results/)")
    p.add_argument("--models", help="comma-separated server names to run, in this order")
    p.add_argument("--ui", action="store_true",
                   help="start every server and the Locust web UI (127.0.0.1:8089) instead")
    p.add_argument("--web-host", default="127.0.0.1", metavar="ADDR",
                   help="--ui: the address the web UI listens on (default: %(default)s)")
    p.add_argument("--web-port", type=int, default=8089, metavar="PORT",
                   help="--ui: the web UI's port (default: %(default)s)")
    p.add_argument("--set", action="append", default=[], metavar="PATH=VALUE",
                   help="override a scenario key, e.g. --set load.hold=2s --set "
                        "load.steps=[100,500] (validated like the file; repeatable)")
    p.add_argument("--repeat", type=int, metavar="N",
                   help="run every model N times, interleaved (same as --set load.repeat=N); "
                        "the report shows the median and the min-max band")
    p.add_argument("--json", action="store_true",
                   help="print a machine-readable summary on stdout (and nothing else there)")
    return p


def choose_backend(scenario: Scenario, choice: str, live: LiveView, *,
                   web_host: str = "127.0.0.1", web_port: int = 8089):
    """The Backend for ``choice``; ``auto`` is Docker when every host's daemon
    answers, else local with a one-line notice for a scenario on this machine
    alone, else a BackendError naming the hosts that did not answer
    (:func:`lab.backends.auto_backend`). ``web_host``/``web_port``: where
    a ``--ui`` run's Locust web UI listens (Docker: where it is published)."""
    if choice == "auto":
        from lab.backends import auto_backend

        choice, notice = auto_backend(scenario.hosts)
        if notice:
            live.line(notice)
    if choice == "docker":
        from lab.backends.docker.backend import DockerBackend

        backend = DockerBackend(scenario, progress=live.line)
        backend.web_host, backend.web_port = web_host, web_port  # read by start_load
        return backend
    from lab.backends.local import LocalBackend

    return LocalBackend(scenario, progress=live.line, web_host=web_host, web_port=web_port)


def resolve_scenario(path: Path, overrides: list[str], models: str | None = None) -> Scenario:
    """The scenario a run runs: the file, its ``--set`` overrides, then
    ``--models``. Expectations of the servers these leave out are set aside
    (``expect_not_checked``), so what the run writes (scenario.yaml, run.json)
    validates and reads back."""
    scenario = load_scenario(path, overrides=overrides)
    if models is not None:
        scenario = select_servers(scenario, [m.strip() for m in models.split(",")])
    return scenario


def refuse_what_cannot_fit(scenario: Scenario) -> None:
    """Exit 2 before anything starts when the doctor predicts a server's top
    step cannot fit in this host's memory (lab/host/doctor.py)."""
    from lab.host.doctor import memory_refusals
    from lab.host.facts import local_host_facts

    refusals = memory_refusals(scenario, local_host_facts())
    if refusals:
        raise InputError("the scenario cannot fit in this host's memory; nothing was "
                         "started:\n  " + "\n  ".join(refusals))


def refuse_what_the_network_needs(scenario: Scenario, backend_name: str) -> None:
    """Exit 2 before anything starts when ``load.network`` asks for what this
    kernel or this process cannot do (lab/host/tc.py): delay/loss without
    netem; a class priority (SO_PRIORITY) without CAP_NET_ADMIN (local workers)."""
    from lab.host.tc import netem_missing, netem_refusals, priority_refusal, shaped_classes

    if not shaped_classes(scenario.load):
        return
    refusals = netem_refusals(scenario, netem_missing())
    if backend_name == "local" and (why := priority_refusal()):
        refusals.append(why)
    if refusals:
        raise InputError("load.network cannot be applied here; nothing was started:\n  "
                         + "\n  ".join(refusals))


def command(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    overrides = [*args.set, *([f"load.repeat={args.repeat}"] if args.repeat is not None else [])]
    scenario = resolve_scenario(args.scenario, overrides, args.models)
    if not args.ui:
        refuse_what_cannot_fit(scenario)
    live = LiveView()
    backend = choose_backend(scenario, args.backend or scenario.backend, live,
                             web_host=args.web_host, web_port=args.web_port)
    try:
        refuse_what_the_network_needs(scenario, backend.name)
    except InputError:
        backend.cleanup()  # its temp directory; nothing else was started
        raise
    from lab.run.loop import run_scenario
    from lab.run.ui import run_ui

    if args.ui:
        try:
            run_ui(scenario, backend, args.out, live=live)
        except Interrupted as exc:  # the way a UI session ends: 130 (SIGINT) or 143 (SIGTERM)
            live.line(f"iolab: {exc}")
            return exc.exit_code
        return 0
    run_dir, outcomes = run_scenario(scenario, backend, args.out, live=live)
    say = sys.stderr if args.json else sys.stdout  # --json: stdout is the summary alone
    print(f"run: {run_dir}", file=say)
    for name, outcome in outcomes.items():
        print(f"  {name}: {summarize(outcome, scenario.load.user == USER_CHURN)}", file=say)
    missing = [f for f in REPORT_FILES if not (run_dir / f).exists()]
    if not missing:
        print(f"report: {run_dir / 'report.html'}", file=say)
    from lab.analysis.expect import EXIT_UNMET, check, summary
    from lab.analysis.headline import headline
    from lab.results.reader import load_run

    try:
        run = load_run(run_dir)
    except InputError as exc:  # the run's own record does not read back: a failed run
        print(f"{PROG}: the run directory does not read back: {exc}", file=sys.stderr)
        run = None
    for sentence in headline(run) if run else ():
        print(sentence, file=say)
    verdicts = check(run) if run else []
    for verdict in verdicts:
        print(f"  expect {verdict.line()}", file=say)
    failed = [name for name, o in outcomes.items() if o.error]
    code = 0
    if failed:  # a limit is a finding; a model the lab could not measure is a failure
        print(f"{PROG}: not measured: {', '.join(failed)} (see above and {run_dir / 'logs'})",
              file=sys.stderr)
        code = 1
    if missing or run is None:  # what was measured is on disk; its report is not
        print(f"{PROG}: the report could not be written ({', '.join(missing) or 'run.json'}); "
              f"the results are in {run_dir}; write it later with `{PROG} report {run_dir}` "
              f"and `{PROG} capacity {run_dir}`", file=sys.stderr)
        code = 1
    elif not code and any(v.failed for v in verdicts):
        unmet = [v.line() for v in verdicts if v.failed]
        print(f"{PROG}: {len(unmet)} expectation(s) not met: " + "; ".join(unmet),
              file=sys.stderr)
        code = EXIT_UNMET
    if args.json:
        print(json.dumps(summary(run, verdicts, code) if run else
                         {"run": str(run_dir), "exit_code": code, "report_written": False},
                         indent=1))
    return code


def summarize(outcome: Any, churn: bool = False) -> str:
    """One line per model: how it ended and what its last step saw (a churn
    load its accept rate: its users close by design, few are connected at the end)."""
    if outcome.error:
        state = f"failed: {outcome.error.splitlines()[0]}"
    elif outcome.stopped_at_step is not None:
        state = f"stopped at step {outcome.stopped_at_step} by {outcome.limit}"
    else:
        state = "ran every step" + (f" (limit seen: {outcome.limit})" if outcome.limit else "")
    if outcome.rows:
        last = outcome.rows[-1]
        rate = last.get("connects_per_s")
        held = (f"{rate or 0:,.0f} connects/s" if churn else
                f"{last['connected']}/{last['target_connections']} connected")
        server = m.held_at_limit(last)
        if outcome.stopped_at_step is not None and not churn and server is not None \
                and server < (last["connected"] or 0):
            held += f" (the server held {server})"  # the rest: its queue, refusals in flight
        state += f"; last step {held}, errors {last['error_rate']:.1%}"
    return state
