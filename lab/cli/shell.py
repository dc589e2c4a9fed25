"""The error shell shared by ``run-lab report``, ``capacity`` and ``compare``.

``main(argv) -> exit code``: parse, run, and turn a ``LabError`` into one line on
stderr and its exit code (2 for bad input). argparse's own usage errors also
come back as exit code 2 instead of raising SystemExit.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

from lab.errors import LabError


def run_cli(parser: argparse.ArgumentParser, argv: list[str] | None,
            body: Callable[[argparse.Namespace], int]) -> int:
    """Parse ``argv`` with ``parser`` and call ``body(args)``; map errors to exit codes."""
    try:
        args = parser.parse_args(argv)
    except SystemExit as e:  # --help (0) or a usage error (2)
        return e.code if isinstance(e.code, int) else 2
    try:
        return body(args)
    except LabError as e:
        print(f"{parser.prog}: {e}", file=sys.stderr)
        return e.exit_code
