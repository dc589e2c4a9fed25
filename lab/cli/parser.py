"""The argument parser every ``run-lab`` command uses.

argparse's own behaviour on a usage error is to print and ``sys.exit(2)``;
here a usage error is an :class:`InputError` like any other bad input, so the
one error shell in :func:`lab.cli.main` prints it and returns exit code 2.
"""

from __future__ import annotations

import argparse
import sys

from lab.errors import InputError

PROG = "run-lab"


class LabParser(argparse.ArgumentParser):
    """argparse that raises InputError (exit 2) instead of exiting."""

    def __init__(self, command: str | None = None, **kwargs):
        super().__init__(prog=f"{PROG} {command}" if command else PROG, **kwargs)
        self.command = command

    def error(self, message: str):
        # main() prefixes "run-lab: "; name the subcommand once after it.
        where = f"{self.command}: " if self.command else ""
        raise InputError(f"{where}{message} (see `{self.prog} --help`)")

    def exit(self, status: int = 0, message: str | None = None):
        if message:
            sys.stderr.write(message)
        raise SystemExit(status)
