"""``run-lab``: the command line. :func:`main` is an error shell.

    run-lab SCENARIO [--backend auto|docker|local] [--out DIR] [--models a,b] [--ui]
    run-lab validate FILE...      run-lab doctor [SCENARIO] [--backend B]
    run-lab clean [SCENARIO]      run-lab report|capacity|compare ...

Exit codes (runs contract): 0 done, 1 the run failed, 2 bad input, 130
interrupted (Ctrl-C or SIGTERM; what was measured is kept). A ``LabError``
becomes one message on stderr; a traceback only with ``--traceback``.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any

from lab import ROOT
from lab.errors import BackendError, InputError, Interrupted, LabError
from lab.run.live import LiveView
from lab.scenario.loader import load_scenario, select_servers
from lab.scenario.types import Scenario

PROG = "run-lab"


class _Parser(argparse.ArgumentParser):
    """argparse that raises InputError (exit 2) instead of exiting."""

    def error(self, message: str):
        raise InputError(f"{self.prog}: {message} (see --help)")

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)


def _run_parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Run an iolab scenario: every server, every step.",
                epilog="Other commands: validate, doctor, clean, report, capacity, compare "
                       f"(`{PROG} COMMAND --help`).")
    p.add_argument("scenario", type=Path, help="scenario YAML (e.g. lab.yaml)")
    p.add_argument("--backend", choices=("auto", "docker", "local"),
                   help="where servers and load run (default: the scenario's, else auto)")
    p.add_argument("--out", type=Path, default=ROOT / "results",
                   help="where run directories are created (default: results/)")
    p.add_argument("--models", help="comma-separated server names to run, in this order")
    p.add_argument("--ui", action="store_true",
                   help="start every server and the Locust web UI (127.0.0.1:8089) instead")
    return p


def choose_backend(scenario: Scenario, choice: str, live: LiveView):
    """The Backend for ``choice``; ``auto`` is Docker when every host's daemon
    answers, else local with a one-line notice."""
    if choice == "auto":
        from lab.backends.docker.hosts import docker_available

        for host in scenario.hosts:
            ok, why = docker_available(host.endpoint)
            if not ok:
                live.line(f"iolab: using the local backend: {why}")
                choice = "local"
                break
        else:
            choice = "docker"
    if choice == "docker":
        from lab.backends.docker.backend import DockerBackend

        return DockerBackend(scenario, progress=live.line)
    from lab.backends.local import LocalBackend

    return LocalBackend(scenario)


def cmd_run(argv: list[str]) -> int:
    args = _run_parser().parse_args(argv)
    scenario = load_scenario(args.scenario)
    if args.models:
        scenario = select_servers(scenario, [m.strip() for m in args.models.split(",")])
    live = LiveView()
    backend = choose_backend(scenario, args.backend or scenario.backend, live)
    from lab.run.loop import run_scenario, run_ui

    if args.ui:
        try:
            run_ui(scenario, backend, args.out, live=live)
        except Interrupted:
            live.line("iolab: stopped; everything torn down")
        return 0
    run_dir, outcomes = run_scenario(scenario, backend, args.out, live=live)
    print(f"run: {run_dir}")
    for name, outcome in outcomes.items():
        print(f"  {name}: {summarize(outcome)}")
    if (run_dir / "report.html").exists():
        print(f"report: {run_dir / 'report.html'}")
    return 0


def summarize(outcome: Any) -> str:
    """One line per model: how it ended and what its last step saw."""
    if outcome.error:
        state = f"failed: {outcome.error.splitlines()[0]}"
    elif outcome.stopped_at_step is not None:
        state = f"stopped at step {outcome.stopped_at_step} by {outcome.limit}"
    else:
        state = "ran every step" + (f" (limit seen: {outcome.limit})" if outcome.limit else "")
    if outcome.rows:
        last = outcome.rows[-1]
        state += (f"; last step {last['connected']}/{last['target_connections']} connected, "
                  f"errors {last['error_rate']:.1%}")
    return state


def cmd_validate(argv: list[str]) -> int:
    p = _Parser(prog=f"{PROG} validate", description="Check scenario files; start nothing.")
    p.add_argument("files", nargs="+", type=Path)
    args = p.parse_args(argv)
    failed = 0
    for path in args.files:
        try:
            s = load_scenario(path)
        except InputError as exc:
            print(exc, file=sys.stderr)
            failed += 1
            continue
        print(f"{path}: ok ({s.name}: {len(s.servers)} servers, {len(s.load.steps)} steps up "
              f"to {s.max_connections} connections)")
    return 2 if failed else 0


def cmd_doctor(argv: list[str]) -> int:
    p = _Parser(prog=f"{PROG} doctor",
                description="Show the limits this host and each backend impose on a scenario.")
    p.add_argument("scenario", nargs="?", type=Path)
    p.add_argument("--backend", choices=("local", "docker", "both"), default="both")
    args = p.parse_args(argv)
    from lab.backends.docker.hosts import docker_available
    from lab.host.doctor import doctor_text

    scenario = load_scenario(args.scenario) if args.scenario else None
    backends = ("local", "docker") if args.backend == "both" else (args.backend,)
    print(doctor_text(scenario, docker_available(), backends), end="")
    return 0


def cmd_clean(argv: list[str]) -> int:
    p = _Parser(prog=f"{PROG} clean",
                description="Remove every iolab container and network (and stale temp files).")
    p.add_argument("scenario", nargs="?", type=Path, help="also clean this scenario's hosts")
    args = p.parse_args(argv)
    for stale in Path(tempfile.gettempdir()).glob("iolab-local-*"):
        shutil.rmtree(stale, ignore_errors=True)
    endpoints = {"local"}
    if args.scenario:
        endpoints |= {h.endpoint for h in load_scenario(args.scenario).hosts}
    from lab.backends.docker.hosts import clean_all, client_for, docker_available

    for endpoint in sorted(endpoints):
        ok, why = docker_available(endpoint)
        if not ok:
            print(f"{endpoint}: no Docker daemon; nothing to clean there")
            continue
        removed = clean_all(client_for(endpoint))
        print(f"{endpoint}: removed {len(removed)}" + "".join(f"\n  {r}" for r in removed))
    return 0


def _delegate(module: str, function: str) -> Callable[[list[str]], int]:
    def command(argv: list[str]) -> int:
        import importlib

        try:
            entry = getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError) as exc:
            raise BackendError(f"{module}.{function} is not available: {exc}") from None
        return int(entry(argv) or 0)
    return command


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    "run": cmd_run,
    "validate": cmd_validate,
    "doctor": cmd_doctor,
    "clean": cmd_clean,
    "report": _delegate("lab.report.html", "report_main"),
    "capacity": _delegate("lab.analysis.capacity", "capacity_main"),
    "compare": _delegate("lab.analysis.compare", "compare_main"),
}


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def dispatch(argv: list[str]) -> int:
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return cmd_run(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (never raises, except SystemExit(0) for --help)."""
    argv = list(sys.argv[1:] if argv is None else argv)
    show_tb = "--traceback" in argv
    argv = [a for a in argv if a != "--traceback"]
    main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _sigterm) if main_thread else None
    try:
        return dispatch(argv)
    except LabError as exc:
        print(f"{PROG}: {exc}", file=sys.stderr)
        if show_tb:
            traceback.print_exc()
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return Interrupted.exit_code
    except SystemExit as exc:  # --help
        return exc.code if isinstance(exc.code, int) else 0
    except Exception as exc:  # noqa: BLE001 - the error shell
        if show_tb:
            traceback.print_exc()
        print(f"{PROG}: internal error: {type(exc).__name__}: {exc} (rerun with --traceback "
              "for details)", file=sys.stderr)
        return 1
    finally:
        if main_thread:
            signal.signal(signal.SIGTERM, previous)
