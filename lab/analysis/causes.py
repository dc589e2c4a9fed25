"""Why a step missed the SLO, from the evidence the row carries.

A row with a ``limit`` already names its wall (lab/run/verdict.py says which
evidence wins). A step can also miss the SLO with no limit at all — p99 over
the bound, too many errors — and a p99 of 300 ms with no stated reason
invites the reader to blame the server. So every failing step gets a cause,
checked in this order, and the cause says what the evidence was:

1. ``limit <kind>`` — the row's own limit;
2. ``client-bound`` — the generator accounting (contract/generator.py): a
   worker lost, at its CPU bound, or its event loop late; the numbers are the
   load generator's, not the server's;
3. ``server CPU`` — the server used (nearly) all the cores it can use: one for
   the single-threaded models, every core of the host for the thread and
   process models; a custom server's design is unknown, so the host's cores,
   or fewer when its process tree had fewer threads (``server_threads``, read
   from /proc: a tree of T tasks runs on at most T cores at once). The
   sentence names the tree's processes when there are several ("server CPU:
   1.90 of 2 cores busy across 4,012 processes");
4. ``server processes`` — a tree of thousands of processes (``MANY_PROCESSES``,
   a process per connection) that is not CPU-bound is still the server's own
   cost: the kernel schedules, switches between and keeps page tables for
   every one of them;
5. ``retransmissions`` — the kernel retransmitted segments or timed out
   connections in the server's namespace during the step (``retrans_segs``,
   ``tcp_timeouts``): loss or a full queue below the server;
6. ``timeouts`` / ``resets`` — the dominant client-side failure kind;
7. ``unexplained`` — none of the above; the sentence gives the numbers that
   were checked, so a reader can see what was ruled out.
"""

from __future__ import annotations

from contract.generator import client_bound_reasons
from contract.limits import ECONNRESET, TIMEOUT
from contract.models import CUSTOM, MULTICORE
from lab.analysis import metrics as m
from lab.results.reader import Row, parse_failure_kinds

# A server at or above this fraction of the cores it can use is CPU-bound.
CPU_BUSY = 0.9
# A process tree this large is a cause in itself (a process per connection).
MANY_PROCESSES = 1000


def cores_available(model_kind: str | None, host_cpus: int | None, processes: int = 1) -> int:
    """Cores a model can use: all of the host's for thread/process models and
    custom servers (``cause`` narrows a custom tree to its threads); an
    event-driven one runs one loop per process, so ``processes`` of them
    (its SO_REUSEPORT listeners), at most the host's."""
    cpus = max(host_cpus or 1, 1)
    if model_kind in MULTICORE or model_kind == CUSTOM.name:
        return cpus
    return max(1, min(processes, cpus))


def slo_causes(rows: list[Row], failing: list[list[str]], model_kind: str | None,
               host_cpus: int | None, processes: int = 1) -> list[str | None]:
    """One cause per row (None where the row met the SLO).

    ``rows`` are one model's rows in step order; ``failing[i]`` is why row i
    missed the SLO (lab/analysis/capacity.py ``passes``), empty when it met it.
    """
    cores = m.cores_used(rows)
    out: list[str | None] = []
    for row, why, used in zip(rows, failing, cores, strict=True):
        out.append(cause(row, why, used, cores_available(model_kind, host_cpus, processes)) if why
                   else None)
    return out


def cause(row: Row, why: list[str], cores_used: float | None, cores: int) -> str:
    """The cause of one failing step (see the module docstring for the order)."""
    if row.get("limit"):
        return f"limit {row['limit']}"
    bound = client_bound_reasons(row)
    if row.get("client_bound") or bound:
        return "client-bound: " + "; ".join(bound or ["the load generator was the limit"])
    processes, threads = row.get("server_processes"), row.get("server_threads")
    if threads:
        cores = max(1, min(cores, threads))
    across = f" across {processes:,} processes" if processes and processes > 1 else ""
    if cores_used is not None and cores_used >= CPU_BUSY * cores:
        return f"server CPU: {cores_used:.2f} of {cores} core{'s' * (cores > 1)} busy{across}"
    if processes and processes >= MANY_PROCESSES:
        used = f"{cores_used:.2f}" if cores_used is not None else "unknown"
        return (f"server processes: {processes:,} processes in the server's tree (server CPU "
                f"{used} of {cores} core{'s' * (cores > 1)})")
    retrans, timeouts = row.get("retrans_segs") or 0, row.get("tcp_timeouts") or 0
    if retrans or timeouts:
        return (f"retransmissions: the kernel retransmitted {retrans} segments and timed out "
                f"{timeouts} times in the server's namespace")
    kinds = parse_failure_kinds(row.get("failure_kinds"))
    top = max(kinds.items(), key=lambda kv: kv[1], default=(None, 0))
    if top[0] == TIMEOUT:
        return f"timeouts: {top[1]} replies did not come within the client's timeout"
    if top[0] == ECONNRESET:
        return f"resets: the server closed or reset {top[1]} connections"
    checked = [f"server {cores_used:.2f} of {cores} cores{across}" if cores_used is not None
               else "server CPU unknown"]
    if row.get("loadgen_cpu_max") is not None:
        checked.append(f"load worker {row['loadgen_cpu_max']:.2f} of a core")
    if row.get("loadgen_lag_p99_ms") is not None:
        checked.append(f"event-loop lag p99 {row['loadgen_lag_p99_ms']:.1f} ms")
    return f"unexplained: checked {', '.join(checked)}, no kernel drops"
