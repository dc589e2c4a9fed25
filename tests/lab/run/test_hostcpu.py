"""The hold window's CPU: the server's (from its stats) and its whole host's
(/proc/stat), which tell the plan how much of a core the others left a server
whose loop never sleeps (lab/run/hostcpu.py, lab/analysis/metrics.py)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from lab.analysis import metrics as m
from lab.host.proctree import CLOCK_TICKS as USER_HZ
from lab.run.hostcpu import HostCpuSampler, busy_seconds, over_window
from lab.run.monitors import ServerMonitor


def test_a_window_takes_the_rate_of_the_samples_inside_it():
    times = [0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0]
    values = [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6]  # 0.2 s per s
    assert over_window(times, values, 0.4, 2.6) == pytest.approx(0.2 * 2.2)
    # samples covering less than half the window, or none: no honest value
    assert over_window(times, values, 2.6, 6.0) is None
    assert over_window(times, values, 4.0, 5.0) is None
    assert over_window([], [], 0.0, 1.0) is None


def test_busy_is_every_cpu_state_but_idle_and_iowait(tmp_path: Path):
    stat = tmp_path / "stat"
    # user nice system idle iowait irq softirq steal guest guest_nice
    stat.write_text("cpu  100 10 50 9000 40 5 7 3 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n")
    assert busy_seconds(stat) == pytest.approx((100 + 10 + 50 + 5 + 7 + 3) / USER_HZ)
    stat.write_text("garbage")
    assert busy_seconds(stat) is None
    assert busy_seconds(tmp_path / "missing") is None


def test_the_real_host_counts_a_busy_loop():
    """A process spinning for 0.3 s makes this machine's busy seconds grow by
    at least about that (its CPU, or another's while it waits to run), and by
    at most every CPU for the time between the reads."""
    t0 = time.monotonic()
    before = busy_seconds()
    while time.monotonic() - t0 < 0.3:
        pass
    after = busy_seconds()
    wall = time.monotonic() - t0
    assert before is not None and after is not None
    assert 0.25 <= after - before <= wall * (os.cpu_count() or 1) + 2 / USER_HZ


def test_a_disabled_sampler_measures_nothing():
    sampler = HostCpuSampler(enabled=False)
    for t in (0.0, 1.0, 2.0):
        sampler.sample(t)
    assert sampler.between(0.0, 2.0) is None
    fed = iter([10.0, 10.5, 11.0])
    sampler = HostCpuSampler(enabled=True, read=lambda: next(fed))
    for t in (0.0, 1.0, 2.0):
        sampler.sample(t)
    assert sampler.between(0.0, 2.0) == pytest.approx(1.0)


class _NoHandle:
    def poll_events(self):
        return []


def test_the_servers_hold_cpu_is_its_stats_rate_inside_the_window(tmp_path: Path):
    monitor = ServerMonitor(_NoHandle(), tmp_path / "events.jsonl")
    for i in range(12):  # 0.5 s apart; the server burns 0.1 s of CPU per second
        monitor.add({"event": "stats", "time": 100.0 + i / 2, "cpu_user_s": 0.02 * i,
                     "cpu_sys_s": 0.03 * i})
    assert monitor.cpu_over(101.0, 105.0) == pytest.approx(0.1 * 4.0)
    monitor.add({"event": "stats", "time": 106.0, "cpu_user_s": None, "cpu_sys_s": None})
    assert monitor.cpu_over(106.0, 110.0) is None  # no CPU in the stats: nothing made up


def test_the_servers_stats_reporting_is_left_out_of_its_hold_cpu(tmp_path: Path):
    """A built-in server says what its stats ticker took (servers/core.py
    ``Ticker``, ``stats_cpu_s``): the lab's instrument, not the model's cost."""
    monitor = ServerMonitor(_NoHandle(), tmp_path / "events.jsonl")
    for i in range(12):  # 0.1 s of CPU a second, 0.02 of it the stats reporting's
        monitor.add({"event": "stats", "time": 100.0 + i / 2, "cpu_user_s": 0.02 * i,
                     "cpu_sys_s": 0.03 * i, "stats_cpu_s": 0.01 * i})
    assert monitor.cpu_over(101.0, 105.0) == pytest.approx(0.08 * 4.0)


def _rows(used_s, busy_s, hold=5.0):
    pairs = enumerate(zip(used_s, busy_s, strict=True))
    return [{"server_hold_cpu_s": u, "host_busy_s": b, "hold_s": hold, "echo_count": 1000,
             "server_cpu_s": 100.0 + i} for i, (u, b) in pairs]


def test_cores_left_are_what_the_others_did_not_take():
    # 2 CPUs; the server used 0.5 core; the host was busy 2.0 cores: the others
    # took 1.5, which leaves this one-core server 0.5 core, not 1
    rows = _rows([2.5, 2.5, 2.5], [10.0, 5.0, None])
    assert m.cores_left(rows, 1, 2) == pytest.approx([0.5, 1.0, 1.0])
    assert m.cores_used(rows) == pytest.approx([0.5, 0.5, 0.5])
    assert m.cpu_per_message(rows) == pytest.approx([2.5e-3] * 3)
    assert m.cores_left(rows, 1, None) == [1, 1, 1]  # the host's CPUs unknown: the cores


def test_a_run_before_the_hold_cpu_keeps_the_step_deltas():
    rows = [{"server_cpu_s": 1.0, "hold_s": 5.0, "echo_count": 100, "t_end": 10.0},
            {"server_cpu_s": 3.0, "hold_s": 5.0, "echo_count": 100, "t_end": 20.0}]
    assert m.hold_cpu(rows) == [1.0, 2.0] and m.hold_seconds(rows) == [5.0, 10.0]
    assert m.cpu_per_message(rows) == pytest.approx([0.01, 0.02])
