"""Run directories: ``steps.csv`` and ``run.json``, written as each step ends.

A run directory ``<out>/<YYYYmmdd-HHMMSS>-<scenario>/`` is created once and
never reused (a ``-2``, ``-3`` ... suffix when the name exists). Every
finished step is appended to ``steps.csv`` and ``run.json`` is rewritten
atomically (temp file + rename), so a crash or Ctrl-C keeps everything
measured so far; ``complete`` stays false until the run ends normally.

The run.json format and its history: lab/results/formats.py.
"""

from __future__ import annotations

import csv
import json
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from contract.generator import client_bound_reasons
from contract.limits import GENERATOR_LIMITS, LOAD_SIDE_LIMITS
from lab.errors import InputError, ResultsError
from lab.host.proctree import THREADS
from lab.results.columns import NAMES, Row, names
from lab.results.formats import FORMAT_VERSION
from lab.results.phases import connect_columns, count, hold_error_rate, ramp_failures
from lab.results.serving import serving_columns
from lab.scenario.dump import not_checked_to_list
from lab.scenario.loader import scenario_to_dict, scenario_to_yaml
from lab.scenario.types import Scenario, ServerSpec
from lab.versions import installed_versions

# The column names in steps.csv order (declared in lab/results/columns.py).
COLUMNS: tuple[str, ...] = NAMES
# Kernel evidence in the server's namespace (lab/run/kernel.py): increases over
# the step, then socket counts at its end; empty where it cannot be read.
KERNEL_COLUMNS = names("kernel")
# The whole lab's memory at a step's end: what holding these connections cost
# the machine, both ends (the load's processes and the server's) plus the
# kernel's socket memory. ``kernel_sock_bytes`` is the server host's: on one
# host it covers both ends of every connection, on several only the server's.
MEMORY_COLUMNS = names("memory")
# The kernel's evidence that came after the others on disk: the SYN side (format
# 7), then the load's own sockets (lab/run/load_ports.py) and the server's
# accept queue (lab/run/accept_queue.py), format 8.
SYN_COLUMNS = ("syn_drops", "syncookies_sent")
HOLD_CPU_COLUMNS = ("server_hold_cpu_s", "host_busy_s")
FORMAT_8_EVIDENCE = NAMES[NAMES.index("load_time_wait"):NAMES.index("ramp_failures")]
LATER_EVIDENCE = (*SYN_COLUMNS, *FORMAT_8_EVIDENCE)


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


# Slab caches that hold one object per TCP socket: the ``struct tcp_sock``
# itself (about 2.3 KB) and the socket's inode (``sock_inode_cache``, ~0.8 KB).
SOCKET_SLABS = ("TCP", "TCPv6", "sock_inode_cache")


def socket_slab_bytes(path: str = "/proc/slabinfo") -> int | None:
    """Bytes in the per-socket slab caches (active objects x object size).
    /proc/slabinfo is root-only: None when it cannot be read."""
    try:
        with open(path) as f:
            total = 0
            for line in f:
                fields = line.split()
                if fields and fields[0] in SOCKET_SLABS:
                    total += int(fields[1]) * int(fields[3])
            return total
    except (OSError, ValueError, IndexError):
        return None


def kernel_sock_bytes(path: str = "/proc/net/sockstat",
                      slabinfo: str = "/proc/slabinfo") -> int | None:
    """Host kernel memory held by TCP sockets: the buffer pages sockstat counts
    (TCP ``mem``, data queued in send/receive buffers; near 0 for idle
    connections) plus the per-socket slab objects, which every open socket
    pins whether it carries data or not. Host-wide: on one machine a
    connection's two ends are both counted. Buffers only if slabinfo is
    unreadable; None if sockstat is."""
    try:
        with open(path) as f:
            for line in f:
                if line.startswith("TCP:"):
                    fields = line.split()
                    pages = int(fields[fields.index("mem") + 1])
                    return pages * os.sysconf("SC_PAGE_SIZE") + (socket_slab_bytes(slabinfo) or 0)
    except (OSError, ValueError, IndexError):
        return None
    return None


def load_side_limit(connect_failures: dict[str, Any] | None) -> str | None:
    """The load-side limit kind among connect failures, the most frequent first."""
    found = [(int(n), k) for k, n in (connect_failures or {}).items()
             if k in LOAD_SIDE_LIMITS and int(n) > 0]
    return max(found)[1] if found else None


def make_row(spec: ServerSpec, step: dict[str, Any], stats: dict[str, Any] | None,
             limit: str | None, sock_bytes: int | None, active_users: int = 0,
             evidence: dict[str, Any] | None = None, repeat: int = 0,
             hold_cpu: dict[str, float | None] | None = None) -> Row:
    """One ``steps.csv`` row from a loadgen step record and the server's last stats.

    ``hold_cpu`` holds ``server_hold_cpu_s`` and ``host_busy_s``, measured by the
    run loop over the hold window (lab/run/hostcpu.py); empty when not given.

    ``client_bound`` is true when the generator accounting says the load, not
    the server, bounded the step (contract/generator.py), empty when the record
    carries none."""
    stats = stats or {}
    # The loadgen counts a failed connect in both dicts: "failures" is every
    # failure of the step (echo and connect), "connect_failures" the connects.
    kinds = {k: int(n) for k, n in (step.get("failures") or {}).items() if int(n)}
    failures = sum(kinds.values())
    connect_failures = step.get("connect_failures") or {}
    echo_count = int(step.get("echo_count") or 0)
    cpu_user, cpu_sys = stats.get("cpu_user_s"), stats.get("cpu_sys_s")
    return {
        "model": spec.name,
        "server_kind": "custom" if spec.is_custom else spec.model,
        "step": int(step["step"]),
        "target_connections": int(step.get("target_users") or 0),
        "connected": step.get("connected"),
        "server_connections": stats.get("connections"),
        # The server's own peak; a custom server reports none, so the clients'
        # stands in: the most connections that had an echo back at once (open
        # ones count handshakes still in the accept queue; idle users never echo).
        "peak_connections": stats.get("peak_connections") if stats.get("peak_connections")
        is not None else (step.get("peak_served") or step.get("peak_connected")),
        "rps": step.get("rps"),
        **{k: step.get(k) for k in ("p50_ms", "p90_ms", "p99_ms", "max_ms")},
        "echo_count": echo_count,
        "failures": failures,
        "connect_failures": count(connect_failures),
        "failure_kinds": ";".join(f"{k}={n}" for k, n in sorted(kinds.items())),
        "error_rate": hold_error_rate(step, echo_count, failures),
        "limit": limit,
        "server_rss_bytes": stats.get("rss_bytes"),
        "server_cpu_s": (cpu_user + cpu_sys) if None not in (cpu_user, cpu_sys) else None,
        "server_cpu_user_s": cpu_user,
        "server_cpu_sys_s": cpu_sys,
        "hold_s": step.get("hold_s"),
        "active_users": active_users,
        "kernel_sock_bytes": sock_bytes,
        "t_end": step.get("t_end"),
        **{k: (evidence or {}).get(k) for k in KERNEL_COLUMNS if k not in LATER_EVIDENCE},
        "repeat": repeat,
        **generator_columns(step, limit),
        **memory_columns(stats.get("rss_bytes"), step.get("loadgen_rss_bytes"), sock_bytes),
        # Counts of a custom server's tree (lab/host/proctree.py); a built-in
        # --processes server's "processes" is a list of its children's stats.
        **{f"server_{k}": stats.get(k) if isinstance(stats.get(k), int) else None
           for k in ("processes", THREADS)},
        **connect_columns(step),
        **{k: (evidence or {}).get(k) for k in SYN_COLUMNS},  # format 7's, at the end
        "connects_per_s": step.get("connects_per_s"),
        "dropped": step.get("dropped"),
        **serving_columns(stats),
        **{k: (evidence or {}).get(k) for k in FORMAT_8_EVIDENCE},
        "ramp_failures": ramp_failures(step),  # format 9
        **{k: (hold_cpu or {}).get(k) for k in HOLD_CPU_COLUMNS},  # format 10
        "server_stats_cpu_s": stats.get("stats_cpu_s"),  # format 11
    }



def model_cpu_s(stats: dict[str, Any]) -> float | None:
    """A stats event's CPU seconds (user + system) less what the server's own
    stats reporting took so far (``stats_cpu_s``, servers/core.py ``Ticker``:
    the lab's instrument, not the model; absent for a custom server and in
    older runs); None when the event carries no CPU."""
    user, sys_, spent = (stats.get(k) for k in ("cpu_user_s", "cpu_sys_s", "stats_cpu_s"))
    if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in (user, sys_)):
        return None
    return user + sys_ - (spent if isinstance(spent, int | float) else 0.0)


def memory_columns(server_rss: int | None, loadgen_rss: int | None,
                   kernel: int | None) -> dict[str, int | None]:
    """``MEMORY_COLUMNS``: the sum only when every part is known (a partial
    sum would read as a smaller lab)."""
    parts = (server_rss, loadgen_rss, kernel)
    return {"loadgen_rss_bytes": loadgen_rss,
            "lab_mem_bytes": None if None in parts else sum(parts)}


def generator_columns(step: dict[str, Any], limit: str | None) -> dict[str, Any]:
    """The generator accounting of a step record (loadgen/meter.py ``merge``)."""
    reasons = client_bound_reasons(step)
    bound = None if reasons is None else bool(reasons)
    if limit in GENERATOR_LIMITS:
        bound = True  # a lost worker (or master) is client-bound whatever the rest says
    return {"loadgen_cpu_max": step.get("loadgen_cpu_max"),
            "loadgen_lag_p99_ms": step.get("loadgen_lag_p99_ms"),
            "workers_alive": step.get("workers_alive"),
            "workers_expected": step.get("workers_expected"),
            "client_bound": bound}


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):  # 15 significant digits: exact epochs, no float noise
        return f"{value:.15g}"
    return str(value)


def write_json_atomic(path: Path, data: Any) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=1, default=str)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def create_run_dir(out: Path, scenario_name: str, clock: float | None = None) -> Path:
    """A new, empty run directory; never an existing one. An ``--out`` that
    cannot hold one (read-only, no access, full) is bad input, found here
    before anything starts."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(clock))
    base = out / f"{stamp}-{scenario_name}"
    try:
        out.mkdir(parents=True, exist_ok=True)
        for n in range(1, 1000):
            candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
            try:
                candidate.mkdir()
            except FileExistsError:
                continue
            (candidate / "logs").mkdir()
            return candidate
    except OSError as exc:
        raise InputError(f"--out {out}: cannot create run directories there "
                         f"({exc.strerror or exc}); pick a writable directory with --out") from None
    raise InputError(f"--out {out}: {base.name} exists 999 times; clean up or pick another --out")


def _write_failed(path: Path, exc: OSError, kept: str) -> ResultsError:
    return ResultsError(f"cannot write {path}: {exc.strerror or exc}; {kept}")


class RunRecord:
    """The results of one run as they accumulate; every change is on disk at once.

    This is the one writer of ``steps.csv`` and ``run.json``, and the two never
    disagree: a row goes to the CSV, then run.json is rewritten atomically;
    if either write fails (ENOSPC, EROFS, EACCES) the CSV is cut back to its
    previous length, so both still hold the rows before it, and a
    :class:`ResultsError` names the path, the error and what was kept.
    run.json exists from the first moment with ``status: starting``.
    """

    def __init__(self, run_dir: Path, scenario: Scenario, backend: str,
                 unapplied: list[str] | tuple[str, ...] = (), hosts: dict[str, Any] | None = None,
                 commit: str | None = None):
        self.run_dir = run_dir
        self.csv_path = run_dir / "steps.csv"
        self.json_path = run_dir / "run.json"
        self.data: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "status": "starting",
            "scenario": scenario_to_dict(scenario),
            "expect_not_checked": not_checked_to_list(scenario),
            "backend": backend,
            "unapplied": list(unapplied),
            "hosts": hosts or {},
            "git_commit": commit,
            "versions": installed_versions(),
            "started": now_iso(),
            "finished": None,
            "complete": False,
            "interrupted": False,
            "models": {},
            "rows": [],
        }
        try:
            (run_dir / "scenario.yaml").write_text(scenario_to_yaml(scenario))
            with self.csv_path.open("w", newline="") as f:
                csv.writer(f).writerow(COLUMNS)
            self.save()
        except OSError as exc:
            raise InputError(f"{run_dir}: cannot write the run directory "
                             f"({exc.strerror or exc}); pick a writable --out") from None

    @property
    def rows(self) -> list[Row]:
        return self.data["rows"]

    def save(self) -> None:
        try:
            write_json_atomic(self.json_path, self.data)
        except OSError as exc:
            raise _write_failed(self.json_path, exc, self.kept()) from None

    def kept(self) -> str:
        return (f"kept: {len(self.rows)} step row(s) in {self.csv_path} and the run.json "
                "written before this change")

    def start(self, unapplied: list[str], hosts: dict[str, Any], commit: str | None) -> None:
        """The backend is ready: record what it could not apply and the hosts."""
        self.data.update(status="running", unapplied=list(unapplied), hosts=hosts,
                         git_commit=commit)
        self.save()

    def add_row(self, row: Row) -> None:
        size = self.csv_path.stat().st_size
        typed = {c: row.get(c) for c in COLUMNS}
        try:
            with self.csv_path.open("a", newline="") as f:
                csv.writer(f).writerow([_csv_value(row.get(c)) for c in COLUMNS])
            self.rows.append(typed)
            write_json_atomic(self.json_path, self.data)
        except OSError as exc:
            if self.rows and self.rows[-1] is typed:
                self.rows.pop()
            path = self.json_path if self.csv_path.stat().st_size > size else self.csv_path
            _truncate(self.csv_path, size)
            raise _write_failed(path, exc, self.kept()) from None

    def set_model(self, name: str, **info: Any) -> None:
        self.data["models"].setdefault(name, {}).update(info)
        self.save()

    def finish(self, *, complete: bool, interrupted: bool, status: str | None = None) -> None:
        status = status or ("complete" if complete else "interrupted" if interrupted
                            else "failed")
        self.data.update(finished=now_iso(), complete=complete, interrupted=interrupted,
                         status=status)
        self.save()


def _truncate(path: Path, size: int) -> None:
    """Cut a half-written row off (truncating needs no free space)."""
    try:
        with path.open("r+b") as f:
            f.truncate(size)
    except OSError:
        pass


def read_steps_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))
