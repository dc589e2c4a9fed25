"""The command line that starts one lab server, for both backends.

A built-in model is ``python -m servers MODEL`` with the scenario's limits;
a custom server is the scenario's own command with ``{python}`` and
``{port}`` filled in. The backends differ only in the values: the local one
binds loopback on a free port with its own interpreter, a container binds
all its interfaces on a fixed port with the image's ``python``.
"""

from __future__ import annotations

from collections.abc import Iterable

from lab.host.ceiling import processes_for
from lab.scenario.types import ServerSpec

# Stats events per second from each server: the run loop takes a step's
# server numbers from the last event before the step's end, so this bounds
# how stale they can be.
STATS_INTERVAL_S = 0.5


def substitute(words: Iterable[str], *, python: str, port: int | None) -> list[str]:
    """A custom server's command with ``{python}`` and ``{port}`` filled in."""
    return [w.replace("{python}", python).replace("{port}", str(port)) for w in words]


def server_command(spec: ServerSpec, *, python: str, host: str, port: int,
                   nofile: str, processes: int = 1) -> list[str]:
    """``nofile`` is ``max`` or a number, as ``--nofile`` takes it; ``processes``
    is ``spec.processes`` resolved (``processes``, below)."""
    if spec.is_custom:
        return substitute(spec.command or (), python=python, port=port)
    cmd = [python, "-m", "servers", spec.model, "--host", host, "--port", str(port),
           "--nofile", nofile, "--backlog", str(spec.limits.backlog),
           "--on-fd-limit", spec.on_fd_limit, "--work-us", str(spec.work_us),
           "--block-us", str(spec.block_us),
           "--stats-interval", f"{STATS_INTERVAL_S:g}"]
    if spec.workers is not None:
        cmd += ["--workers", str(spec.workers)]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    if not spec.nodelay:  # the server's default is on (contract/defaults.py NODELAY)
        cmd.append("--no-nodelay")
    return cmd


def processes(spec: ServerSpec, nofile_limit: int, top: int) -> int:
    """How many processes ``spec`` runs with, given the open-file limit each
    gets: ``processes: N`` is N, ``auto`` sized for the ``top`` step."""
    return processes_for(spec.processes, spec.model, nofile_limit, top)
