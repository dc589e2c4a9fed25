"""iolab orchestration: scenarios, backends, results, report, capacity, CLI.

This package never imports ``servers`` or ``loadgen``: it knows model names
and starts processes or containers that run them.
"""

from pathlib import Path

# The repository root: scenarios, docker/, results/ and the source trees the
# image is built from are found relative to it.
ROOT = Path(__file__).resolve().parent.parent
