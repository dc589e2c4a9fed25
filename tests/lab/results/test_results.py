"""Results files: rows, run directories that are never reused, atomic run.json."""

from __future__ import annotations

import io
import json
import os

import pytest
from lab_fakes import stats, step_record

from lab.results.formats import FORMAT_VERSION
from lab.results.writer import (
    COLUMNS,
    RunRecord,
    create_run_dir,
    kernel_sock_bytes,
    load_side_limit,
    make_row,
    read_steps_csv,
)
from lab.run.live import LiveView
from lab.scenario.loader import parse_scenario

SCENARIO = parse_scenario(
    "servers: [epoll, {name: mine, command: ./srv, port: 9000}]\nload: {steps: [10]}\n", "r.yaml")


def test_make_row_counts_failures_once_and_names_kinds():
    record = step_record(2, 100, 90, echo_count=900, failures={"timeout": 5, "ECONNREFUSED": 10},
                         connect_failures={"ECONNREFUSED": 10})
    row = make_row(SCENARIO.servers[0], record, stats(0, 90), "ECONNREFUSED", 4096)
    assert row["failures"] == 15 and row["connect_failures"] == 10
    assert row["failure_kinds"] == "ECONNREFUSED=10;timeout=5"
    assert row["error_rate"] == 15 / 915
    assert (row["model"], row["server_kind"], row["step"]) == ("epoll", "epoll", 2)
    assert row["kernel_sock_bytes"] == 4096 and row["server_cpu_s"] == 2.0
    assert set(row) == set(COLUMNS)


def test_make_row_without_requests_or_stats():
    row = make_row(SCENARIO.servers[1], step_record(0, 10, 0, echo_count=0, p99=None), None,
                   None, None)
    assert row["error_rate"] == 0.0 and row["server_kind"] == "custom"
    assert row["server_connections"] is None and row["server_cpu_s"] is None


def test_load_side_limit_picks_the_most_frequent_known_kind():
    assert load_side_limit({"EADDRNOTAVAIL": 3, "EMFILE": 7, "timeout": 99}) == "EMFILE"
    assert load_side_limit({"timeout": 4}) is None
    assert load_side_limit(None) is None


def test_run_dirs_are_never_reused(tmp_path):
    a = create_run_dir(tmp_path, "lab", clock=0)
    b = create_run_dir(tmp_path, "lab", clock=0)
    assert a != b and b.name == a.name + "-2" and (b / "logs").is_dir()


def test_record_writes_each_row_at_once(tmp_path):
    run_dir = create_run_dir(tmp_path, "lab")
    record = RunRecord(run_dir, SCENARIO, "local", ["x"], {"local": {}}, "abc")
    record.add_row(make_row(SCENARIO.servers[0], step_record(0, 10, 10), None, None, None))
    data = json.loads((run_dir / "run.json").read_text())
    assert data["format_version"] == FORMAT_VERSION and data["complete"] is False
    assert data["scenario"]["servers"][1]["command"] == ["./srv"]
    assert len(data["rows"]) == 1 and read_steps_csv(run_dir / "steps.csv")[0]["model"] == "epoll"
    assert not list(run_dir.glob(".run.json.*"))  # no temp files left behind
    record.finish(complete=True, interrupted=False)
    assert json.loads((run_dir / "run.json").read_text())["complete"] is True


def test_kernel_sock_bytes(tmp_path):
    fake = tmp_path / "sockstat"
    fake.write_text("sockets: used 10\nTCP: inuse 5 orphan 0 tw 1 alloc 6 mem 3\n")
    slab = tmp_path / "slabinfo"
    slab.write_text("slabinfo - version: 2.1\n"
                    "# name <active_objs> <num_objs> <objsize> ...\n"
                    "TCP 10 30 2368 13 8 : tunables 0 0 0\n"
                    "sock_inode_cache 4 40 832 39 8 : tunables 0 0 0\n"
                    "filp 662 882 192 21 1 : tunables 0 0 0\n")
    page = os.sysconf("SC_PAGE_SIZE")
    assert kernel_sock_bytes(str(fake), str(slab)) == 3 * page + 10 * 2368 + 4 * 832
    assert kernel_sock_bytes(str(fake), str(tmp_path / "none")) == 3 * page  # not root
    assert kernel_sock_bytes(str(tmp_path / "none")) is None
    assert isinstance(kernel_sock_bytes(), int)


@pytest.mark.skipif(not os.access("/proc/slabinfo", os.R_OK), reason="/proc/slabinfo is root-only")
def test_kernel_sock_bytes_grows_with_idle_connections():
    """Idle sockets hold no buffered data, but each pins its slab objects:
    1000 loopback connections (2000 sockets) cost the kernel well over 2 MB."""
    import socket

    listener = socket.create_server(("127.0.0.1", 0), backlog=2048)
    before = kernel_sock_bytes()
    held = []
    try:
        for _ in range(1000):
            client = socket.create_connection(listener.getsockname())
            held += [client, listener.accept()[0]]
        grown = kernel_sock_bytes() - before
    finally:
        for s in held:
            s.close()
        listener.close()
    assert grown > 2000 * 1024, grown


def test_live_view_plain_and_tty():
    plain = io.StringIO()
    view = LiveView(plain, tty=False, clock=lambda: 0.0)
    view.progress("epoll", 0, 2, 100, 50, 10.0, None, None)
    view.progress("epoll", 0, 2, 100, 60, 10.0, None, None)  # throttled
    assert plain.getvalue().count("\n") == 1 and "\r" not in plain.getvalue()
    tty = io.StringIO()
    view = LiveView(tty, tty=True)
    view.progress("epoll", 0, 2, 100, 50, 10.0, 1.5, 0.0)
    view.line("done")
    assert tty.getvalue().startswith("\r\x1b[K  epoll step 0 of 0-1 -> 100 conns")
    assert "\r\x1b[Kdone\n" in tty.getvalue()


def test_csv_keeps_epoch_precision_and_drops_float_noise(tmp_path):
    run_dir = create_run_dir(tmp_path, "lab")
    record = RunRecord(run_dir, SCENARIO, "local", [], {}, None)
    row = make_row(SCENARIO.servers[0], step_record(0, 10, 10, t_end=1795845502.5886955),
                   {**stats(0, 10), "cpu_user_s": 0.1, "cpu_sys_s": 0.2}, None, None)
    record.add_row(row)
    (written,) = read_steps_csv(run_dir / "steps.csv")
    assert abs(float(written["t_end"]) - 1795845502.5886955) < 1e-4
    assert written["server_cpu_s"] == "0.3"


def test_out_that_is_a_file_is_an_input_error(tmp_path):
    from lab.errors import InputError

    (tmp_path / "file").write_text("")
    with pytest.raises(InputError, match="cannot create run directories"):
        create_run_dir(tmp_path / "file", "lab")


def test_live_view_does_not_redraw_an_unchanged_status():
    tty = io.StringIO()
    view = LiveView(tty, tty=True)
    for _ in range(3):
        view.progress("epoll", 0, 2, 100, 50, 10.0, 1.5, 0.0)
    assert tty.getvalue().count("epoll step 0 of 0-1") == 1
