"""What exactly ran: iolab's own version and commit, and the installed
versions of the packages a measurement depends on (recorded in every
run.json; pinned for installs by constraints.txt, see scripts/lock)."""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata

from lab import ROOT

# The packages whose behaviour is part of a measurement.
MEASURED_WITH = ("locust", "gevent", "greenlet", "docker", "pyyaml", "uvloop", "liburing",
                 "hdrhistogram", "matplotlib")


def iolab_version() -> str:
    try:
        return metadata.version("iolab")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=5, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def installed_versions() -> dict[str, str | None]:
    """``{"python": "3.11.7", "iolab": ..., "locust": ...}``; None for a package not installed."""
    out: dict[str, str | None] = {"python": platform.python_version(), "iolab": iolab_version()}
    for name in MEASURED_WITH:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def version_line() -> str:
    commit = git_commit()
    return f"run-lab (iolab) {iolab_version()}" + (f", git {commit[:12]}" if commit else "")
