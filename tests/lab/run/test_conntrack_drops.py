"""``conntrack_drops``: the namespace's conntrack ``drop`` counter, summed
over the per-CPU lines of /proc/net/stat/nf_conntrack (hex)."""

from __future__ import annotations

from pathlib import Path

from lab.run.kernel import KernelSampler, conntrack_drops

HEADER = ("entries  clashres found new invalid ignore delete chainlength insert "
          "insert_failed drop early_drop icmp_error  expect_new expect_create expect_delete "
          "search_restart\n")


def net_dir(tmp_path: Path, drops: tuple[int, int]) -> Path:
    net = tmp_path / "net"
    (net / "stat").mkdir(parents=True, exist_ok=True)
    (net / "netstat").write_text("TcpExt: ListenOverflows\nTcpExt: 0\n")
    (net / "snmp").write_text("Tcp: RetransSegs\nTcp: 0\n")
    lines = "".join(f"0003de49  00000000 00000000 00000000 00001491 00000000 00000000 00000000 "
                    f"00000000 00000000 {d:08x} 0000d579 00000000  00000000 00000000 00000000 "
                    f"00000000\n" for d in drops)
    (net / "stat" / "nf_conntrack").write_text(HEADER + lines)
    return net


def test_drops_are_summed_over_cpus(tmp_path):
    assert conntrack_drops(net_dir(tmp_path, (0x86e20, 0x7e8f2))) == 0x86e20 + 0x7e8f2


def test_no_conntrack_means_none(tmp_path):
    assert conntrack_drops(tmp_path) is None


def test_a_step_gets_the_drops_over_its_window(tmp_path):
    sampler = KernelSampler(net_dir(tmp_path, (10, 0)))
    sampler.sample(1.0)
    net_dir(tmp_path, (10, 2944))  # the kernel dropped 2,944 SYNs meanwhile
    sampler.sample(2.0)
    assert sampler.step(1.0, 2.0)["conntrack_drops"] == 2944
