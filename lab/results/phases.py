"""A step's two phases in a row: the connect phase's columns and the hold's
error rate, from a loadgen step record (loadgen/phases.py ``merge``).

The connect phase is every connect of the step, ramp included: a SYN that a
full listener queue dropped is retransmitted by the client's kernel after
1 s, 3 s, ..., so a full accept queue shows as slow connects and, past the
client's connect timeout, as failed attempts that the user retries. That is
latency in the connect phase, not an error of the steady state: the hold's
error rate counts only what failed inside the hold window.
"""

from __future__ import annotations

from typing import Any


def count(kinds: dict[str, Any] | None) -> int:
    """The total of a ``{kind: n}`` failure dict."""
    return sum(int(n) for n in (kinds or {}).values())


def hold_error_rate(step: dict[str, Any], echo_count: int, failures: int) -> float:
    """The hold phase's error rate: failures inside the hold window over the
    echoes attempted there. A connect that timed out in the ramp and was
    retried is the connect phase's, never the hold's (issue 18: 1,220 retried
    connects over 4,896 echoes read as 20% errors). A record without phase
    keys (an older loadgen) keeps the step-wide ratio."""
    if "hold_attempts" not in step:
        return failures / (echo_count + failures) if echo_count + failures else 0.0
    attempts = int(step.get("hold_attempts") or 0)
    return count(step.get("hold_failures")) / attempts if attempts else 0.0


def connect_columns(step: dict[str, Any]) -> dict[str, Any]:
    """The connect phase of a step record (loadgen/phases.py ``merge``)."""
    attempts = step.get("connect_attempts")
    failed = count(step.get("connect_failures"))
    start, end = step.get("t_connect_start"), step.get("t_connect_end")
    return {
        **{k: step.get(k) for k in ("connect_p50_ms", "connect_p99_ms", "connect_max_ms",
                                    "connect_attempts", "connect_count", "connect_retries")},
        "connect_error_rate": failed / int(attempts) if attempts else None,
        "connect_s": round(end - start, 3) if None not in (start, end) else None,
    }


def ramp_failures(step: dict[str, Any]) -> int | None:
    """Echoes and held connections lost outside the hold window: the step's
    failures less its connect failures and the hold's (None for a record
    without the hold's, from an older loadgen)."""
    if "hold_failures" not in step:
        return None
    return max(count(step.get("failures")) - count(step.get("connect_failures"))
               - count(step.get("hold_failures")), 0)
