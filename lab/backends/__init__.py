"""Where servers and load run: the interface (``base``), local processes (``local``)
and Docker (``docker/``), and the commands both start.

:func:`auto_backend` is what ``backend: auto`` means. A scenario that names only
``local`` hosts asked for this machine: Docker when its daemon answers, else the
local backend with a one-line notice (the same servers and load, as processes).
A scenario placed on Docker hosts (any endpoint other than ``local``) asked for
those machines; the local backend would run everything here instead, a
different measurement, so a host that does not answer is an error naming it
(a :class:`~lab.errors.BackendError`, exit 1), never a silent change of plan.
"""

from __future__ import annotations

from collections.abc import Callable

from lab.errors import BackendError


def auto_backend(hosts, available: Callable[[str], tuple[bool, str]] | None = None
                 ) -> tuple[str, str | None]:
    """``("docker", None)``, or ``("local", notice)`` for a scenario on this
    machine alone whose daemon does not answer; raises BackendError naming
    every host that does not answer when the scenario is placed on Docker hosts.
    ``hosts``: the scenario's :class:`~lab.scenario.types.HostSpec` list;
    ``available(endpoint) -> (ok, why)`` (default: the Docker backend's probe)."""
    if available is None:
        from lab.backends.docker.hosts import docker_available as available
    answers = [(h, *available(h.endpoint)) for h in hosts]
    failed = [(h, why) for h, ok, why in answers if not ok]
    if not failed:
        return "docker", None
    if all(h.endpoint == "local" for h in hosts):
        return "local", f"iolab: using the local backend: {failed[0][1]}"
    placed = ", ".join(f"{h.name} ({h.endpoint})" for h in hosts)
    down = "; ".join(f"host {h.name}: {why}" for h, why in failed)
    raise BackendError(f"backend auto: {down}. The scenario is placed on Docker hosts "
                       f"({placed}); the local backend would run it all on this machine "
                       "instead, so nothing was started. Start the daemon(s), or choose "
                       "--backend local to run it here on purpose")
