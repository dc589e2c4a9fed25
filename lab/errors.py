"""The lab's error tree. ``main()`` turns these into a message and an exit code.

Exit codes (runs contract, docs/design.md): 0 every model measured (a limit is
a finding); 1 some model could not be measured, or the run failed; 2 bad input;
3 the scenario's expectations were not met (lab/analysis/expect.py); 130
interrupted by SIGINT (Ctrl-C); 143 stopped by SIGTERM. What was measured is
kept in every case.
"""


class LabError(Exception):
    """A failure the user should read as one clear message (no traceback)."""

    exit_code = 1


class InputError(LabError):
    """Bad scenario or arguments: names the file, the field and the fix."""

    exit_code = 2


class BackendError(LabError):
    """A backend could not start or talk to what it needs (Docker, a process)."""

    exit_code = 1


class ResultsError(LabError):
    """The run directory could not be written (disk full, read-only, no access):
    names the path, the error and what was kept."""

    exit_code = 1


class Interrupted(LabError):
    """SIGINT during a run; what was measured is kept."""

    exit_code = 130


class Terminated(Interrupted):
    """SIGTERM during a run; what was measured is kept."""

    exit_code = 143


class SigTerm(KeyboardInterrupt):
    """Raised in the main thread by the SIGTERM handler, so every ``except
    KeyboardInterrupt`` that keeps results on Ctrl-C does the same on SIGTERM."""


def interruption(exc: BaseException, message: str) -> Interrupted:
    """The LabError for a KeyboardInterrupt (Ctrl-C) or a :class:`SigTerm`."""
    return Terminated(message) if isinstance(exc, SigTerm) else Interrupted(message)
