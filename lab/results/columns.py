"""The result columns: one declaration per column of ``steps.csv`` (and of
``run.json``'s ``rows``, the same rows typed).

Everything that names a result column reads it here, the way pyperf's
``_metadata.py`` declares each metadata key once: the writer's CSV header and
row keys (:mod:`lab.results.writer`), the reader's conversion of CSV text to
numbers (:mod:`lab.results.reader`), the band fields of repeated passes
(:mod:`lab.results.repeats`), the report's "Every step" table
(:mod:`lab.report.html`), the ``--json`` summary (:mod:`lab.analysis.expect`),
and the column list in README.md and docs/design.md (a unit test compares
them; ``python -m lab.results.columns`` prints both).

``COLUMNS`` is in ``steps.csv`` order, which is a format: a new column goes at
the end (and bumps ``FORMAT_VERSION`` in lab/results/formats.py), never in between.

Each column has a *phase*, when in a step its value is taken (``PHASES``). A
step has two measured phases: the *connect* phase (every connect of the step,
ramp included, and the kernel's SYN-side counters) and the *hold* phase (the
steady state the SLO and the capacity plan judge, lab/analysis/capacity.py).

Steps are numbered from 0, in steps.csv and everywhere the lab shows a step
(:func:`step_of`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TypedDict

PHASES: dict[str, str] = {
    "key": "which row it is: the model, the step, the pass",
    "plan": "what the scenario asked of the step (its target, hold, echoing users)",
    "step": "counted over the whole step, ramp and hold (failures, the limit hit)",
    "hold": "measured during the step's hold only (echo rate, latency, hold errors): what the "
            "SLO and the capacity plan judge",
    "connect": "the step's connect phase, ramp included, from its first connect attempt to its "
               "last established connection (connect latency, attempts, retries, SYN drops)",
    "end": "read at the step's end (connections held, the server's last stats)",
    "kernel": "the kernel's own view of the server's network namespace (lab/run/kernel.py, "
              "lab/run/accept_queue.py): counters' increases over the step, socket counts at "
              "its end, the accept queue's size and the most it held",
    "generator": "the load generator's accounting of itself (contract/generator.py): "
                 "whether the step's numbers are the server's",
    "memory": "the whole lab's memory at the step's end, both ends of every connection",
    "load": "the kernel's view of the load's own sockets toward the server, in the load "
            "generator's network namespace(s) (lab/run/load_ports.py): the most seen over the step",
}
TYPES: tuple[type, ...] = (int, float, bool, str)


@dataclass(frozen=True)
class Column:
    """One result column. ``unit`` is ``""`` for text, counts and fractions;
    ``label`` is the short heading (without the unit) the report prints."""

    name: str
    type: type
    phase: str
    unit: str
    label: str
    meaning: str
    report: bool = False  # a column of the report's "Every step" table
    band: bool = False  # with load.repeat: drawn with its min–max band (<name>_min/_max)
    json: str = ""  # the --json summary's key for its value at a model's top step

    @property
    def tables(self) -> tuple[str, ...]:
        """Where this column appears, besides steps.csv and run.json's rows."""
        return (*(("report",) if self.report else ()), *(("band",) if self.band else ()),
                *((f"--json `{self.json}`",) if self.json else ()))


COLUMNS: tuple[Column, ...] = (
    Column("model", str, "key", "", "model",
           "the server's name in the scenario (the row label)", report=True),
    Column("server_kind", str, "plan", "", "kind", "the built-in model, or `custom`"),
    Column("step", int, "key", "", "step",
           "the step's number, from 0 (the console and the report count the same way)",
           report=True),
    Column("target_connections", int, "plan", "", "target",
           "the users (connections) the step asked for", report=True, json="top_step_connections"),
    Column("connected", int, "end", "", "held", "connections the workers held at the step's end",
           report=True, band=True),
    Column("server_connections", int, "end", "", "server conns",
           "the server's own count of open connections (its last stats event; a custom "
           "server's: ESTABLISHED sockets on its port, read by the lab from the kernel)",
           report=True),
    Column("peak_connections", int, "end", "", "peak",
           "the server's own peak (a custom server: the most clients with a reply at once)"),
    Column("rps", float, "hold", "1/s", "echo/s", "echoes per second during the hold",
           report=True, band=True),
    Column("p50_ms", float, "hold", "ms", "p50",
           "echo latency median during the hold (empty without echoes)", report=True, band=True),
    Column("p90_ms", float, "hold", "ms", "p90", "echo latency p90 during the hold"),
    Column("p99_ms", float, "hold", "ms", "p99", "echo latency p99 during the hold",
           report=True, band=True, json="p99_ms_at_top_step"),
    Column("max_ms", float, "hold", "ms", "max", "the slowest echo during the hold"),
    Column("echo_count", int, "hold", "", "echoes", "echoes during the hold"),
    Column("failures", int, "step", "", "failures",
           "failed requests of the step (echoes and connects)", report=True),
    Column("connect_failures", int, "step", "", "connect failures",
           "failed connects among `failures`"),
    Column("failure_kinds", str, "step", "", "failure kinds", "`kind=n;kind=n`", report=True),
    Column("error_rate", float, "hold", "", "error rate",
           "the hold's error rate: failed echoes and held connections lost in the hold window / "
           "echoes attempted there (`hold_failures / hold_attempts`); connect failures are the "
           "connect phase's (`connect_error_rate`). Format 6 and older: failures / (echo_count "
           "+ failures), connects included", report=True, band=True),
    Column("limit", str, "step", "", "limit",
           "empty, or the limit kind the model hit in the step", report=True),
    Column("server_rss_bytes", int, "end", "bytes", "RSS",
           "the server's resident memory (its last stats event; for a process tree the sum "
           "of PSS, each shared page once)", report=True, band=True),
    Column("server_cpu_s", float, "end", "s", "CPU",
           "the server's CPU time, user + system, cumulative since it started", report=True,
           band=True),
    Column("server_cpu_user_s", float, "end", "s", "CPU user", "the user part of `server_cpu_s`"),
    Column("server_cpu_sys_s", float, "end", "s", "CPU sys", "the system part of `server_cpu_s`"),
    Column("hold_s", float, "plan", "s", "hold", "the step's hold time"),
    Column("active_users", int, "plan", "", "echoing",
           "the users that echo (the EchoUsers among idle ones; every user otherwise)"),
    Column("kernel_sock_bytes", int, "end", "bytes", "kernel sock",
           "host TCP socket memory: sockstat buffers plus per-socket slab objects", report=True,
           band=True),
    Column("t_end", float, "end", "epoch s", "end", "the step's end, epoch seconds"),
    Column("listen_overflows", int, "kernel", "", "listen overflows",
           "ListenOverflows: completed handshakes that found the accept queue full, over the step"),
    Column("listen_drops", int, "kernel", "", "listen drops",
           "ListenDrops: every SYN or ACK dropped on a listener (overflows included), "
           "over the step"),
    Column("tcp_backlog_drop", int, "kernel", "", "backlog drops",
           "TCPBacklogDrop: segments dropped because a socket's own backlog was full, "
           "over the step"),
    Column("tcp_timeouts", int, "kernel", "", "timeouts",
           "TCPTimeouts: retransmission timers that fired, over the step"),
    Column("retrans_segs", int, "kernel", "", "retransmits",
           "RetransSegs: segments retransmitted, over the step"),
    *(Column(name, int, "kernel", "", state, f"TCP sockets in {state} at the step's end")
      for name, state in (("tcp_estab", "ESTABLISHED"), ("tcp_syn_recv", "SYN_RECV"),
                          ("tcp_time_wait", "TIME_WAIT"), ("tcp_close_wait", "CLOSE_WAIT"))),
    Column("conntrack_count", int, "kernel", "", "conntrack",
           "conntrack entries at the step's end"),
    Column("repeat", int, "key", "", "repeat", "which pass of `load.repeat` (from 0)", report=True),
    Column("loadgen_cpu_max", float, "generator", "cores", "load CPU",
           "the busiest load worker's CPU over the hold (fraction of one core)"),
    Column("loadgen_lag_p99_ms", float, "generator", "ms", "load lag p99",
           "the worst load worker's event-loop lag p99 over the hold"),
    Column("workers_alive", int, "generator", "", "workers", "load workers that reported the step"),
    Column("workers_expected", int, "generator", "", "workers planned",
           "load workers the step should have heard from"),
    Column("client_bound", bool, "generator", "", "client-bound",
           "`True` when the generator bounded the step (`contract/generator.py`), `False` when "
           "not, empty when unknown", report=True),
    Column("loadgen_rss_bytes", int, "memory", "bytes", "load RSS",
           "every load process's resident memory at the step's end (each worker's "
           "`/proc/self/statm`, and a distributed master's own), summed"),
    Column("lab_mem_bytes", int, "memory", "bytes", "whole lab",
           "the whole lab's memory at the step's end: `server_rss_bytes` + `loadgen_rss_bytes` + "
           "`kernel_sock_bytes` (the server host's; on one host both ends of every connection); "
           "empty when a part is unknown. The report's \"Memory of the whole lab\" section "
           "(`lab/report/memory.py`) gives its peak and growth per connection", report=True),
    Column("server_processes", int, "end", "", "processes",
           "processes in a custom server's tree at the step's end, read by the lab from /proc "
           "(`lab/host/proctree.py`); empty for a built-in model and on Docker"),
    Column("server_threads", int, "end", "", "tasks",
           "threads (kernel tasks) in a custom server's tree at the step's end: the most "
           "cores it can use at once (on Docker, the cgroup's tasks); empty for a built-in model"),
    Column("connect_p50_ms", float, "connect", "ms", "connect p50",
           "connect latency median (`socket()` to established) over every successful connect of "
           "the step, merged exactly across workers; a SYN the listener dropped is retransmitted "
           "after 1 s, 3 s, ...: it shows here as a slow connect"),
    Column("connect_p99_ms", float, "connect", "ms", "connect p99", "connect latency p99",
           report=True),
    Column("connect_max_ms", float, "connect", "ms", "connect max", "the slowest connect"),
    Column("connect_attempts", int, "connect", "", "connect attempts",
           "connect attempts in the step (retries included)"),
    Column("connect_count", int, "connect", "", "connects", "successful connects in the step"),
    Column("connect_retries", int, "connect", "", "connect retries",
           "attempts whose user's previous connect attempt had failed"),
    Column("connect_error_rate", float, "connect", "", "connect error rate",
           "failed connect attempts / connect attempts (`connect_failures / connect_attempts`)",
           report=True),
    Column("connect_s", float, "connect", "s", "connect phase",
           "the connect phase's length: the step's last established connect minus its first "
           "attempt (`t_connect_end - t_connect_start`)"),
    Column("syn_drops", int, "kernel", "", "SYN drops",
           "TCPReqQFullDrop + ListenDrops: SYNs and handshakes a listener dropped (SYN queue or "
           "accept queue full), over the step"),
    Column("syncookies_sent", int, "kernel", "", "syncookies",
           "SyncookiesSent: SYNs answered with a cookie because the SYN queue was full, over the "
           "step"),
    Column("connects_per_s", float, "hold", "1/s", "connects/s",
           "successful connects per second in the hold window (churn: the accept rate)",
           json="connects_per_s_at_top_step"),
    Column("dropped", int, "hold", "", "dropped",
           "churn arrivals in the hold window that found no free user (open model; 0 otherwise)"),
    Column("server_blocked_per_s", float, "end", "s/s", "loop blocked",
           "the share of the server's last stats interval before the step's end (the hold) "
           "that its one thread slept in `block_us` handler waits, serving no one (event-driven "
           "models; summed over `--processes` loops); empty for other models"),
    Column("server_buffered_bytes", int, "end", "bytes", "buffered",
           "echo the server held at the step's end because `send()` hit EAGAIN (a slow "
           "reader's closed window), summed over connections (event-driven models' own "
           "buffers); empty where the model keeps none (a blocking thread waits in `sendall`)"),
    Column("server_buffered_conns", int, "end", "", "buffering conns",
           "connections the server held such echo for at the step's end"),
    Column("buffered_per_conn_bytes", int, "end", "bytes", "buffered/conn",
           "`server_buffered_bytes / server_buffered_conns`: the server's memory per slow "
           "connection; empty when no connection held any"),
    Column("server_workers", int, "end", "", "workers",
           "threads that serve one connection each until it closes (threadpool's pool, the "
           "blocking server's one); empty for other models"),
    Column("server_busy", int, "end", "", "busy",
           "of `server_workers`, those serving a connection at the step's end"),
    Column("server_waiting", int, "end", "", "waiting",
           "threadpool: connections accepted and queued for a worker at the step's end"),
    Column("server_wait_s", float, "end", "s", "waited",
           "threadpool: how long the longest-queued of `server_waiting` had waited for a "
           "worker at the step's end"),
    Column("server_session_s", float, "end", "s", "session",
           "how long the longest session then served had held its worker (a slowloris client "
           "holds one as long as it dribbles)"),
    Column("load_time_wait", int, "load", "", "load TIME_WAIT",
           "the most of the load's sockets toward the server in TIME_WAIT at once during the "
           "step: the client closed first and each holds its source port for 60 s"),
    Column("load_ports_max", int, "load", "", "load ports",
           "the most source ports one load address had in use toward the server at once "
           "during the step (any state but LISTEN), the busiest address; past "
           "`ip_local_port_range` (28,232 by default) `connect()` fails with EADDRNOTAVAIL, "
           "the client's limit"),
    Column("accept_queue_max", int, "kernel", "", "accept queue",
           "the size of the server's accept queue as the kernel holds it "
           "(`min(backlog, net.core.somaxconn)`, sock_diag's `idiag_wqueue` of its listening "
           "socket; with `processes`, the largest)"),
    Column("accept_queue_peak", int, "kernel", "", "accept queue peak",
           "the most connections seen waiting in the server's accept queue during the step's "
           "connect phase (sock_diag's `idiag_rqueue`, sampled every 20 ms: a shorter burst "
           "can be missed); at least `accept_queue_max` + 1 when `listen_overflows` grew: "
           "the kernel drops a handshake only while the queue holds one more than its size"),
    Column("conntrack_drops", int, "kernel", "", "conntrack drops",
           "packets the kernel dropped over the step because the conntrack table was full "
           "(`drop` in the server namespace's /proc/net/stat/nf_conntrack): SYNs the server "
           "never saw"),
    Column("ramp_failures", int, "connect", "", "ramp failures",
           "echoes sent and held connections lost outside the hold window (in the ramp and "
           "before the hold started): the step's failures less its connect failures and the "
           "hold's; the hold's figures never count them (an echo belongs to the window it was "
           "sent in)", report=True),
    Column("server_hold_cpu_s", float, "hold", "s", "hold CPU",
           "the server's CPU seconds (user + system) in the step's hold window, from its stats "
           "inside the window (their rate times the window), less its stats reporting's "
           "(`server_stats_cpu_s`, format 11): what CPU per message and the "
           "cores a server used are measured on, as `echo_count` counts the hold's echoes; "
           "the ramp's accepts are not in it (`server_cpu_s` has the whole step)", report=True,
           band=True),
    Column("host_busy_s", float, "hold", "s", "host busy",
           "CPU seconds the server's whole host was busy in the hold window, every CPU and "
           "every process, the server's own included (/proc/stat: user, nice, system, irq, "
           "softirq, steal; lab/run/hostcpu.py); less `server_hold_cpu_s` it is what the others "
           "(and the server's stats reporting) took, so what the server could have had; "
           "empty where the server's host is not this machine"),
    Column("server_stats_cpu_s", float, "end", "s", "stats CPU",
           "of `server_cpu_s`, what the server's stats reporting took so far (the lab's "
           "instrument inside a built-in server: reading /proc, a forking server's children's "
           "PSS, printing JSON; servers/core.py `Ticker`); left out of `server_hold_cpu_s` and "
           "CPU per message; empty for a custom server"),
)

BY_NAME: dict[str, Column] = {c.name: c for c in COLUMNS}
NAMES: tuple[str, ...] = tuple(BY_NAME)


def names(phase: str) -> tuple[str, ...]:
    """The columns of one phase, in steps.csv order."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; phases: {', '.join(PHASES)}")
    return tuple(c.name for c in COLUMNS if c.phase == phase)


# A steps.csv row, typed: every key optional (an empty cell is None), values of
# the declared types. Built from COLUMNS so the keys are declared once; the
# repeats' median rows add ``<name>_min``/``_max`` bands and ``repeats``.
Row = TypedDict("Row", {c.name: c.type | None for c in COLUMNS}, total=False)  # type: ignore[misc]


def step_of(step: int, total: int) -> str:
    """How every console line names a step: its steps.csv number and the range,
    ``step 1 of 0-3`` (steps count from 0 everywhere)."""
    return f"step {step} of 0-{max(total - 1, 0)}"


def markdown_table() -> str:
    """docs/design.md's phase and column tables, from the declaration."""
    lines = ["| phase | when the value is taken |", "| --- | --- |"]
    lines += [f"| `{phase}` | {when} |" for phase, when in PHASES.items()] + [""]
    lines += ["| column | type | unit | phase | also in | meaning |",
             "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| `{c.name}` | {c.type.__name__} | {c.unit} | {c.phase} | "
              f"{', '.join(c.tables)} | {c.meaning} |" for c in COLUMNS]
    return "\n".join(lines)


def readme_list(width: int = 80) -> str:
    """README.md's ``steps.csv`` column list, from the declaration."""
    text, lines = "`steps.csv` columns: `" + ", ".join(NAMES) + "`", []
    while len(text) > width:
        cut = text.rindex(" ", 0, width)
        lines.append(text[:cut])
        text = text[cut + 1:]
    return "\n".join([*lines, text])


if __name__ == "__main__":
    print(readme_list(), markdown_table(), sep="\n\n")
