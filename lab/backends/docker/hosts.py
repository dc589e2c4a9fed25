"""Docker hosts: clients for endpoints, daemon checks, host facts, cleanup.

A scenario names each host by a Docker endpoint: ``local`` (the environment's
default: ``DOCKER_HOST`` or ``/var/run/docker.sock``), ``unix://``,
``tcp://`` or ``ssh://`` (the SDK then runs the ``ssh`` binary, so keys and
``~/.ssh/config`` apply). Two endpoints can reach one daemon; callers group
by a labelled marker (:func:`daemon_keys`) so one daemon gets one lab network.
"This machine" (where the image is built, whose routes a run network avoids,
where the Lab tab's bind mount works) is the same marker test against the
``local`` daemon (:func:`this_machine`), never the endpoint's spelling.

Facts per host are read from *inside* a throw-away container, which works for
remote daemons too: ``/proc/sys`` there shows the host's global sysctls, and
the container's default ``ulimit -Hn`` is the open-file hard limit the daemon
passes on. ``nofile: max`` needs the highest ``--ulimit nofile`` the daemon
can *grant*: runc calls ``setrlimit`` for the container and a daemon without
``CAP_SYS_RESOURCE`` (a sandboxed or rootless one) cannot go above its own
hard limit, which fails only when the container starts ("error setting
rlimits ... operation not permitted"). So the lab tries ``fs.nr_open`` once
and falls back to the inherited hard limit, which is always grantable.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Any

from lab.errors import BackendError
from lab.host.limits import PROBE_SCRIPT, parse_probe
from lab.owner import OWNER_LABEL, owner_id

LABEL = "iolab"
CONNECT_TIMEOUT_S = 60


def short_reason(exc: BaseException) -> str:
    """The cause of a connection failure in a few words: the innermost
    ``[Errno N] ...`` of requests' nested messages, else the first line."""
    import re

    text = str(exc)
    found = re.findall(r"\[Errno -?\d+\] [^'\")\]]+", text)
    if found:
        return found[-1].strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:200]


def unreachable(host: str, endpoint: str, exc: BaseException) -> BackendError:
    """The one error for a host whose daemon does not answer or refuses."""
    return BackendError(f"host {host}: no Docker daemon answers at {endpoint} "
                        f"({short_reason(exc)})")


def unanswered(exc: BaseException) -> bool:
    """Whether ``exc`` means the daemon did not answer at all (refused, reset,
    timed out: requests' connection errors; the SDK's own at connect, e.g.
    the API-version probe, are DockerExceptions), not that it answered with
    an error (an APIError, an OSError too through requests) and not a local
    failure on the way (a log file on a full disk is an OSError as well: it
    says nothing about the daemon, and taking it for a gone daemon skipped
    the teardown of every container on that host)."""
    import docker.errors
    import requests.exceptions

    if isinstance(exc, docker.errors.APIError):
        return False
    return isinstance(exc, (docker.errors.DockerException, requests.exceptions.ConnectionError,
                            requests.exceptions.Timeout, ConnectionError, TimeoutError))


def client_for(endpoint: str, timeout: int = CONNECT_TIMEOUT_S, host: str | None = None):
    """A docker SDK client for ``endpoint`` (``local`` = the default). It asks
    the daemon for its API version at once, so a daemon that is down is a
    BackendError here, naming ``host`` and the endpoint."""
    import docker

    try:
        if endpoint == "local":
            return docker.from_env(timeout=timeout)
        if endpoint.startswith("ssh://"):
            return docker.DockerClient(base_url=endpoint, use_ssh_client=True, timeout=timeout)
        return docker.DockerClient(base_url=endpoint, timeout=timeout)
    except docker.errors.DockerException as exc:
        raise unreachable(host or endpoint, endpoint, exc) from exc


def local_target() -> str:
    """Where ``local`` goes: ``DOCKER_HOST``, else the current Docker context's
    host (``DOCKER_CONTEXT`` or the CLI's ``currentContext``; docker-py >= 7.2
    honours it, so colima and Docker Desktop work), else the default socket."""
    import os

    if os.environ.get("DOCKER_HOST"):
        return f"{os.environ['DOCKER_HOST']} (DOCKER_HOST)"
    try:
        from docker.context import ContextAPI
        from docker.context.config import get_current_context_name

        name = os.environ.get("DOCKER_CONTEXT") or get_current_context_name()
        context = ContextAPI.get_context(name)
        if context is not None and context.Host:
            return f"{context.Host} (Docker context {name})"
    except Exception:  # noqa: BLE001 - only a description; from_env decides
        pass
    return "unix:///var/run/docker.sock"


def docker_available(endpoint: str = "local") -> tuple[bool, str]:
    """(True, "Docker 20.10.24 (linux/x86_64)") or (False, why + what to do)."""
    try:
        import docker
    except ImportError:
        return False, "the docker Python SDK is not installed (pip install docker)"
    client = None
    try:
        client = client_for(endpoint, timeout=10)
        client.ping()
        ver = client.version()
    except (docker.errors.DockerException, BackendError, OSError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        where = f"local = {local_target()}" if endpoint == "local" else endpoint
        if isinstance(exc, BackendError) or unanswered(exc):
            return False, (f"no Docker daemon answers at {where} ({first[:200]}); run "
                           "scripts/ensure-docker (as root on Debian/Ubuntu it starts one)")
        return False, f"the Docker daemon at {where} failed: {type(exc).__name__}: {first[:200]}"
    finally:
        if client is not None:
            client.close()  # a probe: its connection pool must not outlive it
    return True, f"Docker {ver.get('Version')} ({ver.get('Os')}/{ver.get('Arch')})"


def clean_all(client, label: str = LABEL,
              keep: Callable[[dict[str, str]], bool] = lambda labels: False) -> list[str]:
    """Remove every container, then every network and volume, labelled
    ``iolab`` (or with ``label``, e.g. ``iolab.run=<run>``), except those whose
    labels ``keep`` says to spare (``run-lab clean``: a live run's). The only
    volumes the lab makes are the marker volumes of :func:`daemon_keys`; a
    killed run can leave one.

    Returns what it removed, as ``container <name>`` / ``network <name>`` /
    ``volume <name>``. Containers go first: a network with attached endpoints
    cannot be removed.
    """
    import docker.errors

    removed = []
    # ignore_removed: a container removed between the list and its inspect (a
    # run tearing down, a concurrent clean) is gone already, not an error.
    for c in client.containers.list(all=True, ignore_removed=True, filters={"label": label}):
        if keep(c.labels or {}):
            continue
        try:
            c.remove(force=True, v=True)
            removed.append(f"container {c.name}")
        except docker.errors.APIError:  # gone already, or being removed
            pass
    for n in client.networks.list(filters={"label": label}):
        if keep(n.attrs.get("Labels") or {}):
            continue
        try:
            n.remove()
            removed.append(f"network {n.name}")
        except docker.errors.APIError:
            pass
    for v in client.volumes.list(filters={"label": label}):
        if keep((getattr(v, "attrs", None) or {}).get("Labels") or {}):
            continue
        try:
            v.remove(force=True)
            removed.append(f"volume {v.name}")
        except docker.errors.APIError:
            pass
    return removed


def run_once(client, image: str, command: list[str], **kwargs: Any) -> str:
    """Run a short container to completion and return its output; always removed.

    Named before it exists: a Ctrl-C that lands while the daemon creates it
    (the call interrupted, the container made) still finds it by that name."""
    import uuid

    import docker.errors

    name = f"iolab-probe-{uuid.uuid4().hex[:12]}"
    try:
        c = client.containers.create(image, command, name=name, labels={
            LABEL: "1", "iolab.role": "probe", OWNER_LABEL: owner_id()}, **kwargs)
    except BaseException:
        with contextlib.suppress(docker.errors.DockerException, OSError):
            client.api.remove_container(name, force=True)
        raise
    try:  # create, then start: a container that fails to start is still removed
        c.start()
        result = c.wait(timeout=120)
        out = c.logs(stdout=True, stderr=True).decode(errors="replace")
        if result.get("StatusCode") != 0:
            raise BackendError(f"probe container failed ({result}): {out[-500:]}")
        return out
    finally:
        c.remove(force=True)


def grantable_nofile(client, image: str, nr_open: int | None, inherited: int) -> int:
    """The highest ``--ulimit nofile`` this daemon can start a container with."""
    import docker.errors
    from docker.types import Ulimit

    if not nr_open or nr_open <= inherited:
        return inherited
    try:
        run_once(client, image, ["true"],
                 ulimits=[Ulimit(name="nofile", soft=nr_open, hard=nr_open)])
        return nr_open
    except (docker.errors.APIError, BackendError):
        return inherited


def host_facts(client, image: str) -> dict[str, Any]:
    """Kernel, CPUs, memory, Docker version and global limits of one daemon's host."""
    info = client.info()
    facts: dict[str, Any] = {
        "daemon_id": info.get("ID"),
        "docker_version": info.get("ServerVersion"),
        "kernel": info.get("KernelVersion"),
        "os": info.get("OperatingSystem"),
        "cpus": info.get("NCPU"),
        "mem_bytes": info.get("MemTotal"),
        "cgroup_version": info.get("CgroupVersion"),
        "security_options": info.get("SecurityOptions"),
    }
    facts.update(parse_probe(run_once(client, image, ["sh", "-c", PROBE_SCRIPT])))
    inherited = int(facts.get("nofile_hard") or 1024)
    nr_open = facts.get("nr_open")
    # lab/host/facts.py reads this as the host's nofile_hard (what nofile: max means here).
    facts["nofile_max_grantable"] = grantable_nofile(
        client, image, nr_open if isinstance(nr_open, int) else None, inherited)
    return facts


def write_sysctl_privileged(client, image: str, name: str, value: int) -> None:
    """Raise a host-global sysctl through a privileged one-shot container.

    Only used when a scenario sets ``host_limits.raise_host_limits: true``:
    ``/proc/sys`` is read-only in normal containers, and writing ``fs.*``
    from a privileged one changes the whole host.
    """
    path = "/proc/sys/" + name.replace(".", "/")
    try:
        run_once(client, image, ["sh", "-c", f"echo {int(value)} > {path}"],
                 privileged=True, user="root")
    except Exception as exc:  # the daemon refuses privileged, or the write fails
        raise OSError(str(exc)) from exc


def _sees(origin, other) -> bool:
    """Whether ``other`` reaches the daemon ``origin`` talks to: a volume with a
    fresh label is created through ``origin`` and looked for through ``other``."""
    import uuid

    token = uuid.uuid4().hex
    volume = origin.volumes.create(name=f"iolab-probe-{token}",
                                   labels={LABEL: "1", "iolab.role": "probe",
                                           "iolab.probe": token, OWNER_LABEL: owner_id()})
    try:
        return bool(other.volumes.list(filters={"label": f"iolab.probe={token}"}))
    finally:
        volume.remove(force=True)


def this_machine(clients: dict[str, Any], endpoints: dict[str, str],
                 local: Any | None = None) -> set[str]:
    """The hosts whose daemon is the one ``local`` reaches (this machine's, where
    the offline base image can be built), by the marker test, never by the
    endpoint's scheme: ``unix:///run/other/docker.sock`` can be another daemon
    (a namespaced one, scripts/testhosts), ``tcp://127.0.0.1`` this one.
    ``local``: a client for this machine's daemon (default: one is opened for
    ``local``, unless a host uses that endpoint). A host that does not answer
    is not this machine."""
    import docker.errors

    own = None
    if local is None:
        local = next((clients[h] for h in clients if endpoints.get(h) == "local"), None)
    if local is None:
        try:
            local = own = client_for("local", timeout=10)
        except BackendError:
            return set()
    found = set()
    try:
        for host, client in clients.items():
            try:
                if client is local or endpoints.get(host) == "local" or _sees(local, client):
                    found.add(host)
            except (docker.errors.DockerException, OSError):
                continue
    finally:
        if own is not None:
            own.close()
    return found


def daemon_keys(clients: dict[str, Any]) -> dict[str, str]:
    """Host name -> a key that two hosts share exactly when they reach the
    same daemon. Daemon IDs cannot decide this (Docker 20.10 derives the ID
    from /etc/docker/key.json, and daemons started from one image or
    directory share it), so a labelled marker does: hosts are compared with
    one representative of each daemon found so far."""
    keys: dict[str, str] = {}
    found: list[tuple[str, Any]] = []  # (key, client) per distinct daemon
    for host, client in clients.items():
        for key, rep in found:
            if rep is client or _sees(rep, client):
                keys[host] = key
                break
        else:
            keys[host] = f"daemon-{len(found) + 1}"
            found.append((keys[host], client))
    return keys
