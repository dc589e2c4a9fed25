"""When the load generator, not the server, set a step's numbers.

A Locust worker is one Python process on one core running one gevent event
loop: every user's timer, send and receive wakes up on that loop. When the
loop is busier than real time allows, a user's next echo starts late and its
reply is read late, so the generator's own queueing shows up as the server's
latency and a falling rate. The lab therefore measures each worker over each
step's hold (its CPU as a fraction of one core, and how late a periodic timer
on its loop fires) and calls the step *client-bound* when a worker was at or
past these bounds, or when a worker was lost. Client-bound rows are evidence
about the generator: the report draws them hollow and the capacity plan
leaves them out.

The keys read below are the step-record / steps.csv names (contract: scripts
outside this repository read them); their columns (with ``client_bound``) are
declared, phase ``generator``, in lab/results/columns.py.
"""

from __future__ import annotations

# A worker using this much of one core (user+sys over the hold window) has no
# headroom left: gevent runs every greenlet on that one core. Measured (one
# worker, benchmarks/loadgen_fidelity.py): at 0.80-0.83 it still held 8000
# paced users within the fidelity target; at 0.99 (15000 users) it sent only
# 63-66% of the echoes asked of it.
CPU_BOUND = 0.9

# p99 of the event loop's lateness over the hold (ms), measured by
# loadgen/lag.py, beyond which the step's numbers are the generator's.
# benchmarks/loadgen_fidelity.py (benchmarks/README.md), one worker, pace 1 s,
# against an independent epoll client on the same server: a healthy worker
# (2000 users, 0.26 core) lags 6-9 ms at p99 and reports a p99 within the
# target (2x the reference's, or +1 ms); at 8000 users (0.8 core) it lags
# 28-29 ms and its p99 sits at the target's edge (one run of two 3% over):
# its stalls release bursts of sends the server then queues. Saturated (15000
# users, 0.99 core) it lags 0.4-1.1 s. With --schedule fixed the lag adds to
# every latency directly. 25 ms is under the lag at which the reported p99
# stopped being the server's, and well above a healthy worker's.
LAG_P99_BOUND_MS = 25.0


def _number(value: object) -> float | None:
    """A steps.csv cell or record value as a number; None when empty/unreadable."""
    if value is None or value == "":
        return None
    try:
        return float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None


def client_bound_reasons(values: dict) -> list[str] | None:
    """Why the generator, not the server, bounded this step (empty: it did
    not); None when the step carries no generator accounting at all (a run
    from before it, or a load process that reported none) — unknown, which is
    not the same as "not client-bound".

    ``values`` is a step record or a steps.csv row (these keys, as numbers or
    their CSV text)."""
    cpu, lag = _number(values.get("loadgen_cpu_max")), _number(values.get("loadgen_lag_p99_ms"))
    alive, expected = _number(values.get("workers_alive")), _number(values.get("workers_expected"))
    if cpu is None and lag is None and alive is None:
        return None
    reasons = []
    target = _number(values.get("target_connections", values.get("target_users")))
    held = _number(values.get("connected"))
    if target is not None and held is not None and held > target:
        # Locust re-dispatches a step's users over the workers it sees; one
        # marked missing (no heartbeat for HEARTBEAT_LIVENESS s) keeps its
        # users, and the others get its share on top.
        reasons.append(f"the load held {held:.0f} connections, more than the {target:.0f} "
                       "asked (a load worker was marked missing and its share handed to "
                       "the others)")
    if alive is not None and expected is not None and alive < expected:
        reasons.append(f"{alive:.0f} of {expected:.0f} load workers reported (worker lost)")
    if cpu is not None and cpu >= CPU_BOUND:
        reasons.append(f"a load worker used {cpu:.2f} of a core (bound {CPU_BOUND:g})")
    if lag is not None and lag > LAG_P99_BOUND_MS:
        reasons.append(f"a load worker's event loop ran {lag:.1f} ms late at p99 "
                       f"(bound {LAG_P99_BOUND_MS:g} ms)")
    return reasons
