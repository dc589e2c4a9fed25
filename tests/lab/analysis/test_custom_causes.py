"""Causes for a custom server measured from its process tree (lab/analysis/causes.py)."""

from __future__ import annotations

from lab.analysis.causes import cause, cores_available, slo_causes


def _row(**fields):
    return {"model": "relay", "server_kind": "custom", "step": 2, "retrans_segs": 0,
            "tcp_timeouts": 0, "failure_kinds": "", **fields}


def test_a_custom_server_can_use_every_core_of_the_host():
    assert cores_available("custom", 2) == 2
    assert cores_available("epoll", 2) == 1  # a built-in event loop still one per process


def test_a_forking_tree_at_the_hosts_cores_names_its_processes():
    row = _row(server_processes=4012, server_threads=4012)
    assert cause(row, ["latency"], 1.9, cores_available("custom", 2)) == (
        "server CPU: 1.90 of 2 cores busy across 4,012 processes")


def test_thousands_of_processes_are_a_cause_below_the_cores():
    row = _row(server_processes=4012, server_threads=4012)
    assert cause(row, ["latency"], 0.8, 2) == (
        "server processes: 4,012 processes in the server's tree (server CPU 0.80 of 2 cores)")
    small = _row(server_processes=12, server_threads=12)
    assert cause(small, ["latency"], 0.8, 2).startswith(
        "unexplained: checked server 0.80 of 2 cores across 12 processes")


def test_a_single_threaded_custom_server_is_busy_at_one_core():
    row = _row(server_processes=1, server_threads=1)
    assert cause(row, ["latency"], 0.95, 2) == "server CPU: 0.95 of 1 core busy"
    assert not cause(_row(), ["latency"], 0.95, 2).startswith("server CPU")  # threads unknown


def test_slo_causes_take_the_cpu_from_the_tree_rows():
    rows = [_row(step=0, t_end=10.0, hold_s=5.0, server_cpu_s=1.0, server_processes=201,
                 server_threads=201, connected=200),
            _row(step=1, t_end=20.0, hold_s=5.0, server_cpu_s=20.0, server_processes=2001,
                 server_threads=2001, connected=2000)]
    first, second = slo_causes(rows, [[], ["latency"]], "custom", 2)
    assert first is None and second.startswith("server CPU: 1.90 of 2 cores busy across 2,001")


def test_a_server_busy_on_the_core_its_host_left_it_names_the_host():
    """poll's loop never sleeps but got 0.55 of its core: the host's other
    processes took 1.43 of its 2 CPUs in the hold (lab/run/hostcpu.py). The
    missing core is the host's: the cause says so instead of "unexplained"."""
    row = {"p99_ms": 300.0, "hold_s": 5.0, "server_hold_cpu_s": 0.55 * 5,
           "host_busy_s": (0.55 + 1.43) * 5}
    used = 0.55
    assert cause(row, ["latency"], used, 1, host_cpus=2) == (
        "host CPU: the server used 0.55 of the 0.57 core its host left it (the host's other "
        "processes took 1.43 of its 2 CPUs in the hold)")
    assert cause(row, ["latency"], used, 1).startswith("unexplained")  # CPUs unknown
    quiet = {**row, "host_busy_s": (0.55 + 0.30) * 5}  # a core was free: not the host's
    assert not cause(quiet, ["latency"], used, 1, host_cpus=2).startswith("host CPU")
    (found,) = slo_causes([row], [["latency"]], "poll", 2)
    assert found is not None and found.startswith("host CPU")
