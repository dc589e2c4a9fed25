"""The lab's error tree. ``main()`` turns these into a message and an exit code.

Exit codes (runs contract): 0 done, 1 the run failed, 2 bad input, 130 interrupted.
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


class Interrupted(LabError):
    """SIGINT/SIGTERM during a run; what was measured is kept."""

    exit_code = 130
