"""The exact (x, y) series each chart plots, per model.

Charts draw only what these functions return, so tests can compare a chart's
data with ``steps.csv`` without looking at pixels. Every series is
``{model: (xs, ys)}`` in step order; points with a missing value are left out
(a step with no echoes has no latency).
"""

from __future__ import annotations

from collections.abc import Callable

from lab.analysis import metrics as m
from lab.results.reader import Row, Run

Series = dict[str, tuple[list[float], list[float]]]


def _series(run: Run, x: Callable[[list[Row]], list], y: Callable[[list[Row]], list]) -> Series:
    out: Series = {}
    for model in run.models:
        rows = run.rows_for(model)
        pairs = zip(x(rows), y(rows), strict=True)
        pts = [(a, b) for a, b in pairs if a is not None and b is not None]
        if pts:
            out[model] = ([a for a, _ in pts], [b for _, b in pts])
    return out


def _col(key: str) -> Callable[[list[Row]], list]:
    return lambda rows: [r.get(key) for r in rows]


def _held(rows: list[Row]) -> list:
    return [m.held(r) for r in rows]


def held_vs_target(run: Run) -> Series:
    """Chart 1: connections held (y) against target connections (x)."""
    return _series(run, _col("target_connections"), _held)


def latency_vs_held(run: Run, field: str = "p99_ms") -> Series:
    """Chart 2: echo latency percentile ``field`` (ms) against connections held."""
    return _series(run, _held, _col(field))


def rate_vs_held(run: Run) -> Series:
    """Chart 3: echo rate (``rps``, messages/s) against connections held."""
    return _series(run, _held, _col("rps"))


def accept_rate_vs_target(run: Run) -> Series:
    """The accept-rate chart: connections made per second in the hold
    (``connects_per_s``; churn's accept rate) against the step's target users."""
    return _series(run, _col("target_connections"), _col("connects_per_s"))


def has_accept_rate(run: Run) -> bool:
    """The accept-rate chart is drawn only when some row measured a connect rate."""
    return any(r.get("connects_per_s") for r in run.rows)


def memory_per_conn(run: Run, key: str = "server_rss_bytes") -> Series:
    """Chart 4a: KiB per connection added since the first step (server RSS, or
    ``kernel_sock_bytes``); see ``report_metrics.marginal_per_connection``."""
    kib = lambda rows: [  # noqa: E731
        None if v is None else v / 1024 for v in m.marginal_per_connection(rows, key)]
    return _series(run, _held, kib)


def cpu_per_message_us(run: Run) -> Series:
    """Chart 4b: server CPU microseconds per echoed message, against connections held."""
    us = lambda rows: [None if v is None else v * 1e6 for v in m.cpu_per_message(rows)]  # noqa: E731
    return _series(run, _held, us)


def latency_vs_idle(run: Run, field: str = "p99_ms") -> Series:
    """Chart 5: active users' latency against idle connections (held minus active)."""
    active = run.load.active_users

    def idle(rows: list[Row]) -> list:
        return [None if h is None else max(h - (r.get("active_users") or active), 0)
                for r, h in zip(rows, _held(rows), strict=True)]

    return _series(run, idle, _col(field))


def limit_points(run: Run) -> dict[str, tuple[float, float, str]]:
    """Where each model first hit a limit: (target, held, kind)."""
    out: dict[str, tuple[float, float, str]] = {}
    for model in run.models:
        if found := run.first_limit(model):
            r, kind = found
            out[model] = (r.get("target_connections") or 0, m.held(r) or 0, kind)
    return out
