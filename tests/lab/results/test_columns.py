"""The result columns are declared once (lab/results/columns.py): the CSV
header, the reader's types, the report's Every step table, ``--json``, the
README's list and docs/design.md's table all follow the declaration."""

from __future__ import annotations

import ast
import io
import re
from pathlib import Path

from lab_fakes import stats, step_record

from lab.analysis.expect import summary
from lab.report.tables import EVERY_STEP, cell, heading
from lab.results.columns import (
    BY_NAME,
    COLUMNS,
    NAMES,
    PHASES,
    TYPES,
    Row,
    markdown_table,
    names,
    step_of,
)
from lab.results.reader import load_run
from lab.results.writer import RunRecord, create_run_dir, make_row
from lab.run.live import LiveView
from lab.scenario.loader import parse_scenario
from paths import ROOT

GOLDEN = ROOT / "tests/data/runs/20261128-060017-select-poll-epoll"
SCENARIO = parse_scenario("servers: [epoll]\nload: {steps: [10, 20]}\n", "r.yaml")

# steps.csv of format version 5, as written on disk: the declaration must keep
# it (a new column goes at the end, with a FORMAT_VERSION bump and this line).
HEADER_V6 = (  # format 6; format 7 appends the connect phase
    "model,server_kind,step,target_connections,connected,server_connections,peak_connections,"
    "rps,p50_ms,p90_ms,p99_ms,max_ms,echo_count,failures,connect_failures,failure_kinds,"
    "error_rate,limit,server_rss_bytes,server_cpu_s,server_cpu_user_s,server_cpu_sys_s,hold_s,"
    "active_users,kernel_sock_bytes,t_end,listen_overflows,listen_drops,tcp_backlog_drop,"
    "tcp_timeouts,retrans_segs,tcp_estab,tcp_syn_recv,tcp_time_wait,tcp_close_wait,"
    "conntrack_count,repeat,loadgen_cpu_max,loadgen_lag_p99_ms,workers_alive,workers_expected,"
    "client_bound,loadgen_rss_bytes,lab_mem_bytes,server_processes,server_threads"
)
HEADER_V7 = HEADER_V6 + (
    ",connect_p50_ms,connect_p99_ms,connect_max_ms,connect_attempts,connect_count,"
    "connect_retries,connect_error_rate,connect_s,syn_drops,syncookies_sent,connects_per_s,dropped"
)
HEADER_V8 = HEADER_V7 + (  # the server's own evidence about slow clients
    ",server_blocked_per_s,server_buffered_bytes,server_buffered_conns,buffered_per_conn_bytes,"
    "server_workers,server_busy,server_waiting,server_wait_s,server_session_s"
    # the load's sockets and the server's accept queue
    ",load_time_wait,load_ports_max,accept_queue_max,accept_queue_peak"
    ",conntrack_drops"  # packets dropped for a full conntrack table
)
HEADER_V9 = HEADER_V8 + ",ramp_failures"  # failures outside the hold window
HEADER_V10 = HEADER_V9 + ",server_hold_cpu_s,host_busy_s"  # the hold window's CPU
HEADER_V11 = HEADER_V10 + ",server_stats_cpu_s"  # the lab's stats reporting's CPU


def test_every_column_is_declared_once_and_completely():
    assert len(NAMES) == len(set(NAMES)) == len(COLUMNS)
    for c in COLUMNS:
        assert c.type in TYPES and c.phase in PHASES, c
        assert c.label and c.meaning and "|" not in c.meaning and "\n" not in c.meaning, c
    assert set(Row.__optional_keys__) == set(NAMES) and not Row.__required_keys__
    assert names("kernel")[0] == "listen_overflows" and len(names("kernel")) == 15
    assert names("kernel")[-5:] == ("syn_drops", "syncookies_sent", "accept_queue_max",
                                    "accept_queue_peak", "conntrack_drops")
    assert names("load") == ("load_time_wait", "load_ports_max")
    assert names("memory") == ("loadgen_rss_bytes", "lab_mem_bytes")


def test_the_csv_header_is_the_declaration_in_its_on_disk_order(tmp_path):
    record = RunRecord(create_run_dir(tmp_path, "lab"), SCENARIO, "local")
    assert record.csv_path.read_text().splitlines() == [HEADER_V11]
    assert ",".join(NAMES) == HEADER_V11 and HEADER_V11.startswith(HEADER_V10)


def test_the_reader_types_every_column_as_declared(tmp_path):
    record = RunRecord(create_run_dir(tmp_path, "lab"), SCENARIO, "local")
    full = {c.name: {int: 3, float: 2.5, bool: True, str: "x"}[c.type] for c in COLUMNS}
    record.add_row(full)
    record.add_row({**dict.fromkeys(NAMES), "model": "epoll", "step": 1})
    first, empty = load_run(record.run_dir).rows
    for c in COLUMNS:
        assert type(first[c.name]) is c.type, c.name
    assert all(empty[n] is None for n in NAMES if n not in ("model", "step"))


def test_make_row_fills_exactly_the_declared_columns():
    row = make_row(SCENARIO.servers[0], step_record(0, 10, 10), stats(0, 10), None, 4096)
    assert list(row) == list(NAMES)


def test_the_report_table_takes_labels_units_and_formats_from_the_declaration():
    assert [c.name for c in EVERY_STEP][:3] == ["model", "step", "repeat"]
    assert {c.name for c in EVERY_STEP} == {c.name for c in COLUMNS if c.report}
    assert heading(BY_NAME["p99_ms"]) == "p99 ms" and heading(BY_NAME["connected"]) == "held"
    assert heading(BY_NAME["server_rss_bytes"]) == "RSS MiB"
    assert cell(3 * 2**20, "lab_mem_bytes") == "3.0" and cell(None, "p99_ms") == "–"
    assert cell(1200, "step") == "1200" and cell(1200, "connected") == "1,200"
    assert cell(0.0123456, "error_rate") == "0.01235" and cell(1.5, "p99_ms") == "1.5"


def test_json_summary_keys_come_from_the_declaration():
    run = load_run(GOLDEN)
    data = summary(run, [], 0)
    declared = {c.json: c.name for c in COLUMNS if c.json}
    assert set(declared) == {"top_step_connections", "p99_ms_at_top_step",
                             "connects_per_s_at_top_step"}
    for model, entry in data["models"].items():
        top = run.rows_for(model)[-1]
        assert {key: entry[key] for key in declared} == {k: top.get(n) for k, n in declared.items()}


def _readme_list() -> list[str]:
    text = (ROOT / "README.md").read_text()
    found = re.search(r"`steps\.csv` has one row per model per step\. .*?`(model,[^`]*)`",
                      text, re.S)
    assert found, "README.md lost its steps.csv column list"
    return [name.strip() for name in found.group(1).split(",")]


def test_the_readme_lists_every_column_in_order():
    assert _readme_list() == list(NAMES)


def test_design_md_holds_the_declared_tables():
    design = (ROOT / "docs/design.md").read_text()
    assert markdown_table() in design, "run `python -m lab.results.columns` and paste the table"
    documented = re.findall(r"^\| `(\w+)` \| (?:int|float|bool|str) \|", design, re.M)
    assert documented == list(NAMES)


def test_steps_are_numbered_from_0_on_the_console_as_in_steps_csv():
    out = io.StringIO()
    view = LiveView(out, tty=False, clock=lambda: 100.0)
    view.progress("epoll", 1, 4, 200, 150, 10.0, None, None)
    row = make_row(SCENARIO.servers[0], step_record(1, 200, 200), stats(0, 200), None, None)
    view.step_done(row)
    view.model_done("epoll", "EMFILE", 1)
    lines = out.getvalue().splitlines()
    assert step_of(1, 4) == "step 1 of 0-3" and row["step"] == 1
    assert lines[0].startswith("  epoll step 1 of 0-3 -> 200 conns")
    assert lines[1].startswith("  epoll step 1: 200/200 connected")
    assert lines[2] == "  epoll: stopped at step 1 (EMFILE)"


def test_the_report_tables_are_a_leaf_the_sections_import():
    for module in ("tables", "holdout", "memory"):
        tree = ast.parse((ROOT / f"lab/report/{module}.py").read_text())
        imported = {f"{n.module}.{a.name}" if isinstance(n, ast.ImportFrom) else a.name
                    for n in ast.walk(tree) if isinstance(n, ast.Import | ast.ImportFrom)
                    for a in n.names}
        assert not any(name.startswith("lab.report.html") for name in imported), module
        if module == "tables":
            assert not any(name.startswith("lab.report") for name in imported)
