"""``run-lab``: the command line. :func:`main` is the one error shell.

    run-lab SCENARIO [--backend auto|docker|local] [--out DIR] [--models a,b] [--ui]
    run-lab validate FILE...      run-lab doctor [SCENARIO] [--backend B]
    run-lab clean [SCENARIO]      run-lab report|capacity|compare ...

Each command is a module here with ``command(argv) -> int``; it raises
``LabError`` subclasses and never prints tracebacks or exits by itself.
Exit codes (runs contract, docs/design.md): 0 every model measured (a limit
is a finding), 1 some model could not be measured, the run failed or its
report could not be written, 2 bad input, 3 an expectation not met, 130
interrupted by SIGINT (Ctrl-C), 143 by SIGTERM; what was measured is kept. A
``LabError`` becomes one message on stderr; a traceback only with
``--traceback``.
"""

from __future__ import annotations

import importlib
import signal
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any

from lab.cli.parser import PROG
from lab.cli.run_cmd import choose_backend, summarize  # noqa: F401 - the run command's API
from lab.errors import BackendError, LabError, SigTerm, interruption


def _delegate(module: str, function: str = "command") -> Callable[[list[str]], int]:
    """A command imported when it runs (doctor and clean need docker-py, report
    needs matplotlib; ``validate`` should start fast without them)."""
    def command(argv: list[str]) -> int:
        try:
            entry = getattr(importlib.import_module(module), function)
        except (ImportError, AttributeError) as exc:
            raise BackendError(f"{module}.{function} is not available: {exc}") from None
        return int(entry(argv) or 0)
    return command


COMMANDS: dict[str, Callable[[list[str]], int]] = {
    name: _delegate(f"lab.cli.{name}_cmd")
    for name in ("run", "validate", "doctor", "clean", "report", "capacity", "compare")
}


def _sigterm(signum: int, frame: Any) -> None:
    raise SigTerm


def dispatch(argv: list[str]) -> int:
    if argv[:1] == ["--version"]:
        from lab.versions import version_line

        print(version_line())
        return 0
    if argv[:1] == ["help"]:
        if argv[1:2] and argv[1] in COMMANDS:
            return COMMANDS[argv[1]](["--help"])
        return COMMANDS["run"](["--help"])
    if argv and argv[0] in COMMANDS:
        return COMMANDS[argv[0]](argv[1:])
    return COMMANDS["run"](argv)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit code (never raises)."""
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
    except KeyboardInterrupt as exc:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return interruption(exc, "").exit_code
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
