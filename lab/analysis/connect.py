"""The connect phase of each step, as findings: what opening the step's
connections cost, and why, apart from the hold the SLO judges.

A listener's accept queue (``min(backlog, net.core.somaxconn)``) that is full
when a handshake completes makes the kernel drop it (``ListenOverflows``);
a full SYN queue drops the SYN (``TCPReqQFullDrop``) or answers it with a
syncookie. The client's kernel retransmits the SYN after 1 s, 3 s, ..., so
the connection is made late, or the attempt times out and the user retries.
When every connection was made by the hold's end, that is latency in the
connect phase, not a wall: the step gets no ``backlog`` limit
(lab/run/verdict.py) but a finding with its evidence, e.g. "connect p99
1,012 ms: 1,220 connects retried; the accept queue of 5 overflowed 1,204
times (6 waiting at most, sampled)" — the queue's size and the most seen in
it are the kernel's (lab/run/accept_queue.py). A connect that failed with
EADDRNOTAVAIL is the client's: its source ports ran out, said with the
load's own sockets (lab/run/load_ports.py), never the server's.

``slo.connect_p99_ms`` and ``slo.connect_error_rate`` (none by default) are
the connect phase's own bounds: a step that misses one gets "missed the
connect SLO" in its finding; the hold verdict does not change.

A plan's ``binds`` is said with its phase (:func:`binds_phase`): the SLO
criteria are the hold's; ``backlog`` and a load-side connect failure are the
connect phase's (connections never made); any other limit is the step's.
"""

from __future__ import annotations

from typing import Any

from contract.limits import BACKLOG, EADDRNOTAVAIL, LOAD_SIDE_LIMITS
from lab.results.reader import Row, parse_failure_kinds
from lab.scenario.types import SLO

CONNECT_PHASE_LIMITS = frozenset({BACKLOG, *LOAD_SIDE_LIMITS})


def _ms(value: float) -> str:
    return f"{value:,.0f} ms" if value >= 10 else f"{value:.1f} ms"


def missed_connect_slo(row: Row, slo: SLO) -> list[str]:
    """Why ``row``'s connect phase misses the connect SLO (empty: it meets it,
    or the scenario set none)."""
    why = []
    p99, err = row.get("connect_p99_ms"), row.get("connect_error_rate")
    if slo.connect_p99_ms is not None and p99 is not None and p99 > slo.connect_p99_ms:
        why.append(f"connect p99 {_ms(p99)} > {_ms(slo.connect_p99_ms)}")
    if slo.connect_error_rate is not None and err is not None and err > slo.connect_error_rate:
        why.append(f"connect error rate {err:.2%} > {slo.connect_error_rate:.2%}")
    return why


def evidence(row: Row) -> list[str]:
    """The connect phase's trouble in words: retries, failed attempts and the
    kernel's drops on the listener. Empty when every connect went through at
    the first attempt and the kernel dropped nothing."""
    out = []
    retries, failed = row.get("connect_retries") or 0, row.get("connect_failures") or 0
    if retries:
        out.append(f"{retries:,} connects retried")
    elif failed:
        out.append(f"{failed:,} connect attempts failed")
    out += client_ports(row)
    overflows = row.get("listen_overflows") or 0
    size, peak = row.get("accept_queue_max"), row.get("accept_queue_peak")
    queue = "the accept queue" + (f" of {size:,}" if size is not None else "")
    if overflows:
        seen = f" ({peak:,} waiting at most, sampled)" if peak is not None else ""
        out.append(f"{queue} overflowed {overflows:,} times{seen}")
    syn = row.get("syn_drops") or 0
    if syn > overflows:
        out.append(f"the listener dropped {syn:,} SYNs or handshakes")
    if cookies := row.get("syncookies_sent") or 0:
        out.append(f"{cookies:,} syncookies sent (the SYN queue was full)")
    if lost := row.get("ramp_failures") or 0:
        out.append(f"{lost:,} echoes or held connections failed outside the hold "
                   "(the ramp's; the SLO judges the hold)")
    return out


def client_ports(row: Row) -> list[str]:
    """EADDRNOTAVAIL among the connect failures, named as the client's limit
    with the load's own sockets (lab/run/load_ports.py) as its evidence."""
    failed = parse_failure_kinds(row.get("failure_kinds")).get(EADDRNOTAVAIL, 0)
    if not failed:
        return []
    ports, waiting = row.get("load_ports_max"), row.get("load_time_wait")
    seen = ", ".join([*([f"{ports:,} ports in use on one source address"] if ports else []),
                      *([f"{waiting:,} in TIME_WAIT"] if waiting else [])])
    return [f"{failed:,} connects failed with EADDRNOTAVAIL: the client ran out of source ports"
            + (f" ({seen})" if seen else "") + ", the client's limit, not the server's"]


def finding(row: Row, slo: SLO) -> str | None:
    """One step's connect-phase finding, or None when its connects were clean."""
    seen, missed = evidence(row), missed_connect_slo(row, slo)
    if not seen and not missed:
        return None
    p99 = row.get("connect_p99_ms")
    text = (f"connect p99 {_ms(p99)}" if p99 is not None else "connect phase") + (
        ": " + "; ".join(seen) if seen else "")
    if missed:
        text += f" — missed the connect SLO ({'; '.join(missed)})"
    return text


def model_summary(rows: list[Row], slo: SLO) -> dict[str, Any]:
    """The ``--json`` ``connect`` object of one model: the worst connect p99
    and its step, every step's finding, and whether the connect SLO (if any)
    was met."""
    timed = [r for r in rows if r.get("connect_p99_ms") is not None]
    worst = max(timed, key=lambda r: r["connect_p99_ms"], default=None)
    set_slo = slo.connect_p99_ms is not None or slo.connect_error_rate is not None
    return {
        "p99_ms": worst.get("connect_p99_ms") if worst else None,
        "worst_step": worst.get("step") if worst else None,
        "retries": sum(r.get("connect_retries") or 0 for r in rows),
        "syn_drops": sum(r.get("syn_drops") or 0 for r in rows) if rows else None,
        "findings": [{"step": r.get("step"), "finding": f} for r in rows
                     if (f := finding(r, slo))],
        "slo_met": (not any(missed_connect_slo(r, slo) for r in rows)) if set_slo else None,
    }


def limit_words(kind: str) -> str:
    """A limit as a sentence names it: EADDRNOTAVAIL says whose it is (the
    load's source ports ran out; the server never saw those connects)."""
    if kind == EADDRNOTAVAIL:
        return f"{kind}, the client's limit (its source ports ran out), not the server's"
    return kind


def binds_phase(binds: str) -> str:
    """The plan's ``binds`` with the phase it was measured in, e.g. ``errors (hold)``."""
    if binds == "none":
        return binds
    if binds in ("latency", "errors", "connections"):
        return f"{binds} (hold)"
    return f"{binds} ({'connect' if binds in CONNECT_PHASE_LIMITS else 'step'})"


def best_connects_per_s(passing: list[Row]) -> float | None:
    """Churn's accept rate for the plan: the best ``connects_per_s`` at a step
    meeting the SLO (None when no such step measured one)."""
    rates = [r.get("connects_per_s") for r in passing if r.get("connects_per_s")]
    return max(rates) if rates else None  # type: ignore[type-var]
