"""Host-global kernel limits: read them, record them, raise them only on opt-in.

Some limits that decide where an I/O model stops are *not* per container:

- ``fs.file-max`` — the system-wide open-file table. Every socket of every
  process and container on the host counts; past it ``accept``/``socket``
  fail with ``ENFILE``. Containers share it (``/proc/sys/fs`` is not
  namespaced), so a container's ``--ulimit nofile`` never lifts it.
- ``fs.nr_open`` — the ceiling for any process's ``RLIMIT_NOFILE`` hard
  limit. ``--ulimit nofile=N`` with N above it cannot be set.
- ``kernel.pid_max`` / ``kernel.threads-max`` — the thread-per-connection and
  fork-per-connection models hit these (shared by every PID namespace).

Per network namespace (so a container can set its own with ``--sysctl``) are
``net.core.somaxconn`` (accept-queue cap), ``net.ipv4.ip_local_port_range``
(client source ports) and ``net.ipv4.tcp_tw_reuse``; they are read here too so
the run records the host's defaults.

``read_host_limits()`` needs nothing but ``/proc`` and works without Docker
(the local backend uses it). The Docker backend runs ``PROBE_SCRIPT`` inside a
throw-away container on each host and feeds its output to ``parse_probe``:
``/proc/sys`` inside a container shows the host's global values.
"""

from __future__ import annotations

import resource
from collections.abc import Callable
from pathlib import Path

from lab.scenario.types import HostLimits

# key in the result -> path under /proc/sys
SYSCTLS: dict[str, str] = {
    "file_max": "fs/file-max",
    "nr_open": "fs/nr_open",
    "file_nr": "fs/file-nr",  # allocated, free, max
    "pid_max": "kernel/pid_max",
    "threads_max": "kernel/threads-max",
    "somaxconn": "net/core/somaxconn",
    "ip_local_port_range": "net/ipv4/ip_local_port_range",
    "tcp_tw_reuse": "net/ipv4/tcp_tw_reuse",
}

# A POSIX sh one-liner printing ``key=value`` lines: the same facts read from
# inside a container (on a remote Docker host there is no other way to look).
PROBE_SCRIPT = " ".join(
    f"printf '%s=%s\\n' {key} \"$(cat /proc/sys/{path} 2>/dev/null)\";"
    for key, path in SYSCTLS.items()
) + " printf 'nofile_soft=%s\\nnofile_hard=%s\\n' \"$(ulimit -Sn)\" \"$(ulimit -Hn)\""


def _value(raw: str) -> int | str | None:
    """Integers as int; multi-field values ('32768 60999') normalised to one space."""
    text = " ".join(raw.split())
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        return text


def parse_probe(output: str) -> dict[str, int | str | None]:
    """Parse ``PROBE_SCRIPT`` output (``key=value`` per line)."""
    result: dict[str, int | str | None] = {}
    for line in output.splitlines():
        key, sep, raw = line.partition("=")
        if sep and key.strip():
            result[key.strip()] = _value(raw)
    return result


def read_host_limits(proc_sys: Path = Path("/proc/sys")) -> dict[str, int | str | None]:
    """This host's global limits plus this process's RLIMIT_NOFILE.

    Keys: ``file_max, nr_open, file_nr, pid_max, threads_max, somaxconn,
    ip_local_port_range, tcp_tw_reuse, nofile_soft, nofile_hard``. A value the
    kernel does not expose is ``None``.
    """
    result: dict[str, int | str | None] = {}
    for key, path in SYSCTLS.items():
        try:
            result[key] = _value((proc_sys / path).read_text())
        except OSError:
            result[key] = None
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    result["nofile_soft"] = soft
    result["nofile_hard"] = hard
    return result


def plan_raises(wanted: HostLimits, current: dict) -> dict[str, int]:
    """The host-global sysctls the scenario wants higher: {"fs.file-max": N}."""
    have = current.get("file_max")
    if wanted.file_max is not None and isinstance(have, int) and have < wanted.file_max:
        return {"fs.file-max": wanted.file_max}
    return {}


def write_sysctl_local(name: str, value: int, proc_sys: Path = Path("/proc/sys")) -> None:
    """Write one sysctl on this host (needs root with a writable /proc/sys)."""
    (proc_sys / name.replace(".", "/")).write_text(f"{value}\n")


def apply_host_limits(
    host: str,
    wanted: HostLimits,
    current: dict,
    writer: Callable[[str, int], None] | None,
) -> list[str]:
    """Raise what the scenario asks for, if it opted in and ``writer`` can.

    Returns one sentence per limit that stays below the scenario's wish (what
    limits the run and how to fix it); an empty list when nothing is short.
    ``writer(name, value)`` raises ``OSError`` when it lacks the privilege.
    """
    notes: list[str] = []
    for name, value in plan_raises(wanted, current).items():
        have = current.get("file_max")
        if not wanted.raise_host_limits:
            notes.append(
                f"{host}: {name} is {have}, the scenario wants {value}; not raised "
                "(set host_limits.raise_host_limits: true, or run "
                f"`sysctl -w {name}={value}` as root)"
            )
            continue
        if writer is None:
            notes.append(f"{host}: {name} is {have}; the lab cannot write it on this host")
            continue
        try:
            writer(name, value)
        except OSError as exc:
            notes.append(
                f"{host}: {name} is {have}; raising it to {value} failed ({exc}); "
                f"run `sysctl -w {name}={value}` as root"
            )
    return notes
