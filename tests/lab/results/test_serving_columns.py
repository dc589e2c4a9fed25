"""Format 8's columns from the server's own stats (lab/results/serving.py)."""

from __future__ import annotations

from lab.results.serving import serving_columns


def test_buffered_bytes_per_slow_connection_and_the_pool_fields():
    row = serving_columns({"buffered_bytes": 3_000_000, "buffered_conns": 4,
                           "blocked_per_s": 0.25, "workers": 8, "busy": 8, "waiting": 3,
                           "wait_oldest_s": 1.5, "session_oldest_s": 9.0})
    assert row == {"server_blocked_per_s": 0.25, "server_buffered_bytes": 3_000_000,
                   "server_buffered_conns": 4, "buffered_per_conn_bytes": 750_000,
                   "server_workers": 8, "server_busy": 8, "server_waiting": 3,
                   "server_wait_s": 1.5, "server_session_s": 9.0}


def test_no_buffering_connection_leaves_the_per_connection_figure_empty():
    assert serving_columns({"buffered_bytes": 0, "buffered_conns": 0})[
        "buffered_per_conn_bytes"] is None
    assert set(serving_columns({}).values()) == {None}  # a model that reports none
