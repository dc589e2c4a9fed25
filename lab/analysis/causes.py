"""Why a step missed the SLO, from the evidence the row carries.

A row with a ``limit`` already names its wall (lab/run/verdict.py says which
evidence wins). A step can also miss the SLO with no limit at all — p99 over
the bound, too many errors — and a p99 of 300 ms with no stated reason
invites the reader to blame the server. So every failing step gets a cause,
checked in this order, and the cause says what the evidence was:

1. ``limit <kind>`` — the row's own limit (``serialized`` with the pool's
   evidence below when the server reported it);
2. ``client-bound`` — the generator accounting (contract/generator.py): a
   worker lost, at its CPU bound, or its event loop late; the numbers are the
   load generator's, not the server's;
3. ``serialized`` (a starved pool) — a thread pool or the blocking server
   whose every worker was busy while connections waited: each of its threads
   holds one connection until it closes, so slow clients (slowloris, slow
   readers) hold workers that short-lived clients need. The evidence is the
   server's own (``server_workers``, ``server_busy``, ``server_waiting``,
   ``server_wait_s``, ``server_session_s``): "serialized: 8 of 8 workers
   busy, 31 connections waiting for one (the oldest 4.2 s); the longest
   session had held its worker 12.0 s";
4. ``event loop blocked`` — the one thread of an event-driven server slept
   in handler waits (``block_us``) for ``LOOP_BLOCKED`` of its time or more
   (``server_blocked_per_s``, from its stats): every connection waited
   behind it, whatever the CPU says;
5. ``server CPU`` — the server used (nearly) all the cores it can use: one for
   the single-threaded models, every core of the host for the thread and
   process models; a custom server's design is unknown, so the host's cores,
   or fewer when its process tree had fewer threads (``server_threads``, read
   from /proc: a tree of T tasks runs on at most T cores at once). The
   sentence names the tree's processes when there are several ("server CPU:
   1.90 of 2 cores busy across 4,012 processes");
   (an event loop with ``work_us`` says so: the handler's CPU is the loop's);
   ``host CPU`` when the server used (nearly) all the cores its *host left
   it* but fewer than it can use: the host's other processes (the load
   generator among them) or a hypervisor took the rest in the hold
   (``host_busy_s``, lab/run/hostcpu.py); the server's cost shows, but the
   missing core is the host's, and the sentence says how much of it was
   taken;
6. ``server processes`` — a tree of thousands of processes (``MANY_PROCESSES``,
   a process per connection) that is not CPU-bound is still the server's own
   cost: the kernel schedules, switches between and keeps page tables for
   every one of them;
7. a latency mode near the delayed-ACK interval (``DELAYED_ACK_MS``): p99
   near 40 ms while the median is a few ms is TCP's, not the model's — the
   sub-MSS end of an echo held by Nagle's algorithm until the peer's delayed
   ACK. "Nagle meeting delayed ACK: nodelay off" when the server kept Nagle
   (``nodelay: false``); otherwise the mode and its likely cause;
8. ``conntrack table full`` — the kernel dropped packets for want of a
   conntrack entry (``conntrack_drops``): the host's table
   (``nf_conntrack_max``) was full, so SYNs were dropped before any socket,
   and the connects' retries and timeouts are the host's, not the server's
   (checked before retransmissions, which those drops cause);
9. ``retransmissions`` — the kernel retransmitted segments or timed out
   connections in the server's namespace during the step (``retrans_segs``,
   ``tcp_timeouts``): loss or a full queue below the server;
10. ``timeouts`` / ``resets`` — the dominant client-side failure kind;
11. ``unexplained`` — none of the above; the sentence gives the numbers that
   were checked, so a reader can see what was ruled out.
"""

from __future__ import annotations

from contract.generator import client_bound_reasons
from contract.limits import ECONNRESET, SERIALIZED, TIMEOUT
from contract.models import CUSTOM, EVENT_DRIVEN, MULTICORE
from lab.analysis import metrics as m
from lab.results.reader import Row, parse_failure_kinds
from lab.scenario.types import ServerSpec

# A server at or above this fraction of the cores it can use is CPU-bound.
CPU_BUSY = 0.9
# A process tree this large is a cause in itself (a process per connection).
MANY_PROCESSES = 1000
# An event loop that slept this share of its time in handler waits served no
# one for that long: queueing behind it, not CPU, set the latency.
LOOP_BLOCKED = 0.5
# Linux's shortest delayed ACK (TCP_DELACK_MIN, 40 ms): a p99 in this window
# over a median below DELAYED_ACK_P50_MS is the mode Nagle's algorithm and a
# delayed ACK make together (a sub-MSS segment waits for the ACK of the last).
DELAYED_ACK_MS = 40.0
DELAYED_ACK_WINDOW_MS = (0.9 * DELAYED_ACK_MS, 1.5 * DELAYED_ACK_MS)
DELAYED_ACK_P50_MS = DELAYED_ACK_MS / 4


def cores_available(model_kind: str | None, host_cpus: int | None, processes: int = 1) -> int:
    """Cores a model can use: all of the host's for thread/process models and
    custom servers (``cause`` narrows a custom tree to its threads); an
    event-driven one runs one loop per process, so ``processes`` of them
    (its SO_REUSEPORT listeners), at most the host's."""
    cpus = max(host_cpus or 1, 1)
    if model_kind in MULTICORE or model_kind == CUSTOM.name:
        return cpus
    return max(1, min(processes, cpus))


def _host_took(row: Row, cores_used: float | None, cores: int,
               host_cpus: int | None) -> str | None:
    """``host CPU`` (cause 5): the server busy on the cores its host left it."""
    others = m.others_cores(row)
    if cores_used is None or others is None or not host_cpus:
        return None
    (left,) = m.cores_left([row], cores, host_cpus)
    if left >= CPU_BUSY * cores or cores_used < CPU_BUSY * left:
        return None
    return (f"host CPU: the server used {cores_used:.2f} of the {left:.2f} core"
            f"{'s' * (left > 1)} its host left it (the host's other processes took "
            f"{others:.2f} of its {host_cpus} CPUs in the hold)")


def slo_causes(rows: list[Row], failing: list[list[str]], model_kind: str | None,
               host_cpus: int | None, processes: int = 1,
               server: ServerSpec | None = None) -> list[str | None]:
    """One cause per row (None where the row met the SLO).

    ``rows`` are one model's rows in step order; ``failing[i]`` is why row i
    missed the SLO (lab/analysis/capacity.py ``passes``), empty when it met it;
    ``server`` is the model's scenario entry (its ``nodelay``, ``work_us``,
    ``block_us``), None when unknown.
    """
    cores = m.cores_used(rows)
    out: list[str | None] = []
    for row, why, used in zip(rows, failing, cores, strict=True):
        out.append(cause(row, why, used, cores_available(model_kind, host_cpus, processes),
                         server, host_cpus) if why else None)
    return out


def starved_pool(row: Row) -> str | None:
    """The server's own evidence that every worker was held while connections
    waited (threadpool, blocking), in words; None when it was not starved or
    did not say."""
    workers, busy = row.get("server_workers"), row.get("server_busy")
    if not workers or busy is None or busy < workers:
        return None
    waiting, held = row.get("server_waiting"), m.held(row) or 0
    session = row.get("server_session_s")
    longest = (f"; the longest session had held its worker {session:,.1f} s"
               if session is not None else "")
    if waiting:  # the pool's own queue
        oldest = row.get("server_wait_s")
        age = f" (the oldest {oldest:,.1f} s)" if oldest is not None else ""
        return (f"{busy} of {workers} workers busy, {waiting:,} connection"
                f"{'s' * (waiting > 1)} waiting for one{age}{longest}")
    if waiting is None and held > workers:  # the blocking server: they wait in the kernel
        served = (f" for {session:,.1f} s" if session is not None else "")
        return (f"its {'one thread' if workers == 1 else f'{workers} threads'} served "
                f"{'one connection' if workers == 1 else f'{workers} connections'}{served} "
                f"while the load held {held:,} (the rest waited in the kernel's accept queue)")
    return None


def _handler(server: ServerSpec | None, key: str, where: str = "") -> str:
    """`` (block_us 3,000 µs per message)``, when the scenario set it."""
    value = getattr(server, key, 0) if server is not None else 0
    return f" ({key} {value:,} µs per message{where})" if value else ""


def delayed_ack_mode(row: Row, server: ServerSpec | None) -> str | None:
    """The delayed-ACK latency mode, named with its likely cause; None when
    the step's p99 is not near the interval or its median is too."""
    p99, p50 = row.get("p99_ms"), row.get("p50_ms")
    low, high = DELAYED_ACK_WINDOW_MS
    if p99 is None or p50 is None or not low <= p99 <= high or p50 >= DELAYED_ACK_P50_MS:
        return None
    mode = (f"p99 {p99:.1f} ms over p50 {p50:.1f} ms, a latency mode near Linux's "
            f"{DELAYED_ACK_MS:.0f} ms delayed-ACK interval")
    if server is not None and server.nodelay is False:
        return f"Nagle meeting delayed ACK: nodelay off ({mode})"
    if server is not None and not server.is_custom:
        return (f"delayed-ACK mode: {mode}; the server sets TCP_NODELAY, so likely a small "
                "segment held by Nagle on the client side or a delayed ACK under loss")
    return (f"delayed-ACK mode: {mode}; likely Nagle's algorithm meeting the peer's delayed "
            "ACK (a server that does not set TCP_NODELAY)")


def cause(row: Row, why: list[str], cores_used: float | None, cores: int,
          server: ServerSpec | None = None, host_cpus: int | None = None) -> str:
    """The cause of one failing step (see the module docstring for the order)."""
    starved = starved_pool(row)
    if row.get("limit"):
        evidence = f": {starved}" if starved and row["limit"] == SERIALIZED else ""
        return f"limit {row['limit']}{evidence}"
    bound = client_bound_reasons(row)
    if row.get("client_bound") or bound:
        return "client-bound: " + "; ".join(bound or ["the load generator was the limit"])
    if starved:
        return f"{SERIALIZED}: {starved}"
    blocked = row.get("server_blocked_per_s")
    if blocked is not None and blocked >= LOOP_BLOCKED:
        return (f"event loop blocked: its one thread slept {blocked:.2f} s of every second in "
                f"handler waits{_handler(server, 'block_us')}, serving no one meanwhile")
    processes, threads = row.get("server_processes"), row.get("server_threads")
    if threads:
        cores = max(1, min(cores, threads))
    across = f" across {processes:,} processes" if processes and processes > 1 else ""
    if cores_used is not None and cores_used >= CPU_BUSY * cores:
        in_loop = (_handler(server, "work_us", ", in the event loop's one thread")
                   if server is not None and server.model in EVENT_DRIVEN else "")
        return (f"server CPU: {cores_used:.2f} of {cores} core{'s' * (cores > 1)} busy{across}"
                f"{in_loop}")
    if (shared := _host_took(row, cores_used, cores, host_cpus)) is not None:
        return shared
    if processes and processes >= MANY_PROCESSES:
        used = f"{cores_used:.2f}" if cores_used is not None else "unknown"
        return (f"server processes: {processes:,} processes in the server's tree (server CPU "
                f"{used} of {cores} core{'s' * (cores > 1)})")
    if mode := delayed_ack_mode(row, server):
        return mode
    if dropped := row.get("conntrack_drops"):
        return (f"conntrack table full: the kernel dropped {dropped:,} packets for want of a "
                f"conntrack entry (SYNs the server never saw; nf_conntrack_max is the host's, "
                f"not the server's limit)")
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
    if blocked is not None:
        checked.append(f"server loop blocked {blocked:.2f} s/s")
    return f"unexplained: checked {', '.join(checked)}, no kernel drops"
