"""``load.network`` end to end on the local backend: a group shaped to a rate
is bounded by it while an unshaped group next to it is not, and the lab's
qdisc leaves ``lo`` at the end of a run and when the run is interrupted."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
from paths import ROOT

from lab import cli
from lab.host.tc import HANDLE, root_qdisc
from lab.results.groups import read_groups_csv

pytestmark = [pytest.mark.load,
              pytest.mark.skipif(os.geteuid() != 0, reason="tc on lo and SO_PRIORITY above 6 "
                                                         "need root (CAP_NET_ADMIN)")]

RATE_BPS = 256_000
SIZE = 8192
SHAPED = f"""\
name: shaped
backend: local
servers: [epoll]
load:
  message_size: {SIZE}
  pace: 50ms
  hold: {{hold}}
  steps: [8]
  groups:
    - {{{{name: shaped, network: {{{{rate: {RATE_BPS // 1000}kbit}}}}}}}}
    - {{{{name: free}}}}
"""


def _lab_qdisc_on_lo() -> bool:
    return f"{HANDLE}:" in root_qdisc("lo")


@pytest.mark.timeout(90)
def test_a_rate_limited_group_is_bounded_by_its_rate_and_the_other_is_not(tmp_path):
    assert not _lab_qdisc_on_lo(), "a qdisc of the lab's was on lo before the test"
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SHAPED.format(hold="4s"))
    out = tmp_path / "out"
    code = cli.main([str(scenario), "--out", str(out)])
    assert not _lab_qdisc_on_lo(), "the run left its qdisc on lo"
    assert code in (0, 3)  # the shaped group misses the SLO: that is the point
    (run_dir,) = out.iterdir()
    groups = {r["group"]: r for r in read_groups_csv(run_dir / "groups.csv")}
    shaped, free = groups["shaped"], groups["free"]
    shaped_bps = float(shaped["rps"]) * SIZE * 8
    free_bps = float(free["rps"]) * SIZE * 8
    # the link's rate bounds the shaped group's echoes (headers and htb's burst: 25 %)
    assert 0 < shaped_bps <= RATE_BPS * 1.25, shaped
    # the unshaped group, on the same lo, echoes far beyond it, at loopback latency
    assert free_bps > RATE_BPS * 5, free
    assert float(free["p99_ms"]) < 100 < float(shaped["p50_ms"])
    assert "rate 256kbit" in (run_dir / "report.html").read_text()


@pytest.mark.timeout(120)
def test_ctrl_c_mid_run_removes_the_qdisc_from_lo(tmp_path):
    scenario = tmp_path / "s.yaml"
    scenario.write_text(SHAPED.format(hold="60s"))
    with subprocess.Popen([sys.executable, "-m", "lab", str(scenario), "--out",
                           str(tmp_path / "out")], cwd=ROOT, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True) as proc:
        try:
            deadline = time.monotonic() + 60
            while not _lab_qdisc_on_lo():
                assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read()
                time.sleep(0.2)
            time.sleep(2)  # the load is running through it
            proc.send_signal(signal.SIGINT)
            assert proc.wait(60) == 130
        finally:
            if proc.poll() is None:
                proc.kill()
    assert not _lab_qdisc_on_lo(), "an interrupted run left its qdisc on lo"
