"""The scenarios that tell a story run in CI at small sizes and meet their
own ``expect:`` lines: a real local run of the shipped file with fewer
servers, steps and seconds (``--models``, ``--set``), exit 0 and every
expectation of the servers it ran met (the others listed as not checked)."""

from __future__ import annotations

import json

import pytest
from paths import ROOT

from lab import cli

pytestmark = [pytest.mark.load, pytest.mark.slow]  # whole labs, 12-20 s each: one at a time


def _run(tmp_path, capsys, scenario: str, models: str, *sets: str) -> dict:
    argv = [str(ROOT / "scenarios" / scenario), "--out", str(tmp_path), "--json",
            "--models", models]
    for each in sets:
        argv += ["--set", each]
    code = cli.main(argv)
    out, err = capsys.readouterr()
    data = json.loads(out)
    unmet = [e for m in data["models"].values() for e in m["expectations"] if not e["met"]]
    assert code == 0 and data["expectations_met"], (unmet, err[-3000:])
    return data


def test_slow_clients_starve_the_pool_and_not_epoll(tmp_path, capsys):
    """8 workers, 4 then 8 slowloris clients: the fast group is served, then
    starved (its echoes time out, here after 2 s, inside the 3 s hold); epoll
    serves it throughout. The slowloris message is 3 bytes (1 s) so that its
    echoes finish within the shorter timeout."""
    data = _run(tmp_path, capsys, "slow-clients.yaml", "threadpool,epoll",
                "load.hold=3s", "load.steps=[12,24]", "load.io_timeout=2s",
                "load.groups[1].message_size=3")
    checked = {(e["server"], e["expected"]) for m in data["models"].values()
               for e in m["expectations"]}
    assert ("threadpool", "p99 >= 10x epoll's at 24 in group fast") in checked
    assert ("epoll", "p99 < 50 ms in group fast") in checked
    assert data["models"]["threadpool"]["limit"] == "serialized"
    assert {e["server"] for e in data["expect_not_checked"]} == {
        "blocking", "threads", "select", "asyncio"}


def test_a_waiting_handler_stops_the_loop_and_not_the_threads(tmp_path, capsys):
    """10 then 1,000 connections, each a message a second that waits 2 ms:
    at 1,000 the loop would need 2 s of waiting per second, so its p99 is
    soon ten times the threads' (which wait side by side)."""
    data = _run(tmp_path, capsys, "waiting-handler.yaml", "threads,epoll",
                "load.hold=3s", "load.steps=[10,1000]")
    checked = {(e["server"], e["expected"]) for m in data["models"].values()
               for e in m["expectations"]}
    assert ("epoll", "p99 >= 10x threads' at 1000") in checked
    assert ("threads", "holds >= 1000") in checked
    assert {e["server"] for e in data["expect_not_checked"]} == {"threadpool", "asyncio"}
