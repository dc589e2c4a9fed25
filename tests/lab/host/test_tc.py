"""lab/host/tc.py: the tc commands, the Shaper's apply/remove (with a fake tc
and with the real kernel in a scratch network namespace), and netem where the
kernel has it."""

from __future__ import annotations

import gzip
import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest
from paths import ROOT

from lab.errors import BackendError
from lab.host.tc import (
    ShapedClass,
    Shaper,
    netem_missing,
    remove_leftover,
    setup_commands,
    shaped_classes,
    shaping_summary,
)
from lab.scenario.loader import parse_scenario
from lab.scenario.types import NetworkSpec

ROOT_NOQUEUE = "qdisc noqueue 0: root refcnt 2"
ROOT_LAB = "qdisc htb 1ab0: root refcnt 2 r2q 10 default 0"


class FakeTc:
    """``tc``: answers ``qdisc show`` from its state, records the rest, and
    fails the command that contains ``fail``."""

    def __init__(self, root: str = ROOT_NOQUEUE, fail: str | None = None):
        self.root, self.fail, self.calls = root, fail, []

    def __call__(self, argv):
        argv = list(argv)
        self.calls.append(argv)
        if argv[1:3] == ["qdisc", "show"]:
            return subprocess.CompletedProcess(argv, 0, self.root + "\n", "")
        if self.fail and self.fail in argv:
            return subprocess.CompletedProcess(argv, 2, "", "Error: nope")
        if argv[1:4] == ["qdisc", "add", "dev"] and "root" in argv:
            self.root = ROOT_LAB
        if argv[1:3] == ["qdisc", "del"]:
            self.root = ROOT_NOQUEUE
        return subprocess.CompletedProcess(argv, 0, "", "")


def test_one_class_per_shaped_group_and_no_filter():
    load = parse_scenario("servers: [epoll]\nload:\n  steps: [1]\n  network: {rate: 1mbit}\n"
                          "  groups: [{name: a, network: {rate: 64kbit}}, {name: b}]\n").load
    classes = shaped_classes(load)
    assert [(c.group, c.minor, c.spec.rate_bps) for c in classes] == [("a", 1, 64000),
                                                                      ("b", 2, 1000000)]
    assert [c.priority for c in classes] == [0x1AB00001, 0x1AB00002]
    cmds = [" ".join(c) for c in setup_commands("lo", classes)]
    assert cmds[0] == "tc qdisc add dev lo root handle 1ab0: htb direct_qlen 10000"
    assert "classid 1ab0:1 htb rate 64000bit ceil 64000bit" in cmds[1]
    assert not any("filter" in c or "netem" in c for c in cmds)
    assert shaping_summary(load) == "a: rate 64kbit; b: rate 1mbit"


def test_delay_and_loss_are_a_netem_child_of_the_class():
    spec = NetworkSpec(delay_s=0.05, loss_pct=1.0)
    cmds = [" ".join(c) for c in setup_commands("eth0", [ShapedClass("g", 3, spec)])]
    assert cmds[-1] == "tc qdisc add dev eth0 parent 1ab0:3 handle 3: netem delay 50000us loss 1%"
    assert "rate 10000000000bit" in cmds[1]  # no rate: the class does not limit


def test_apply_then_remove_deletes_only_the_labs_root():
    tc = FakeTc()
    shaper = Shaper("lo", [ShapedClass(None, 1, NetworkSpec(rate_bps=10**6))], run=tc)
    shaper.apply()
    assert tc.root == ROOT_LAB
    shaper.remove()
    assert tc.root == ROOT_NOQUEUE
    assert tc.calls[-1] == ["tc", "qdisc", "del", "dev", "lo", "root", "handle", "1ab0:"]
    calls = len(tc.calls)
    shaper.remove()  # idempotent
    assert len(tc.calls) == calls


def test_a_failed_command_removes_what_was_added():
    tc = FakeTc(fail="class")
    shaper = Shaper("lo", [ShapedClass(None, 1, NetworkSpec(rate_bps=10**6))], run=tc)
    with pytest.raises(BackendError, match="failed: Error: nope"):
        shaper.apply()
    assert tc.root == ROOT_NOQUEUE


@pytest.mark.parametrize("root, whose", [(ROOT_LAB, "another iolab run's"),
                                         ("qdisc tbf 8001: root refcnt 2", "not the lab's")])
def test_a_device_with_a_root_qdisc_is_refused_and_left_alone(root, whose):
    tc = FakeTc(root=root)
    shaper = Shaper("lo", [ShapedClass(None, 1, NetworkSpec(rate_bps=10**6))], run=tc)
    with pytest.raises(BackendError, match=whose):
        shaper.apply()
    shaper.remove()
    assert tc.root == root and not any("del" in c for c in tc.calls)


NETNS_SCRIPT = textwrap.dedent("""\
    import subprocess, sys
    from lab.host.tc import Shaper, ShapedClass, root_qdisc
    from lab.scenario.types import NetworkSpec
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    spec = NetworkSpec(rate_bps=1000000, delay_s=0.01 if sys.argv[1] == "netem" else None)
    shaper = Shaper("lo", [ShapedClass(None, 1, spec)])
    shaper.apply()
    print("applied:", root_qdisc("lo"))
    print(subprocess.run(["tc", "qdisc", "show", "dev", "lo"], capture_output=True,
                         text=True).stdout.strip().replace("\\n", " | "))
    shaper.remove()
    print("removed:", root_qdisc("lo"))
""")


def _in_scratch_netns(kind: str) -> str:
    if os.geteuid() != 0 or not shutil.which("unshare") or not shutil.which("tc"):
        pytest.skip("needs root, unshare and tc (a scratch network namespace)")
    done = subprocess.run(["unshare", "--net", sys.executable, "-c", NETNS_SCRIPT, kind],
                          capture_output=True, text=True, cwd=ROOT, timeout=30,
                          env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_the_real_kernel_takes_the_rate_class_and_gives_it_back():
    out = _in_scratch_netns("rate")
    assert "applied: qdisc htb 1ab0: root" in out
    assert "removed: qdisc noqueue 0: root" in out


@pytest.mark.skipif(netem_missing() is not None,
                    reason=f"netem path: {netem_missing()} (tested where the kernel has it)")
def test_the_netem_path_where_the_kernel_has_netem():
    out = _in_scratch_netns("netem")
    assert "netem 1: parent 1ab0:1" in out and "delay 10ms" in out
    assert "removed: qdisc noqueue 0: root" in out


def test_netem_detection_agrees_with_the_kernels_config():
    try:
        with gzip.open("/proc/config.gz", "rt") as f:
            config = f.read()
    except OSError:
        pytest.skip("no /proc/config.gz to compare with")
    if "# CONFIG_NET_SCH_NETEM is not set" in config:
        assert "no netem qdisc" in (netem_missing() or "")
    elif re.search(r"^CONFIG_NET_SCH_NETEM=[ym]$", config, re.M):
        assert netem_missing() is None
    else:
        pytest.skip("the config does not say")


def test_clean_removes_a_leftover_lab_qdisc_and_nothing_else():
    tc = FakeTc(root=ROOT_LAB)
    assert remove_leftover("lo", run=tc) == "removed the lab's qdisc (1ab0:)"
    assert tc.root == ROOT_NOQUEUE
    other = FakeTc(root="qdisc tbf 8001: root refcnt 2")
    assert remove_leftover("lo", run=other) == "no qdisc of the lab's"
    assert not any("del" in c for c in other.calls)
