"""What ``run-lab doctor`` predicts for C500K (scenarios/c500k.yaml) on the
reference host: the processes and workers the top step gets, the whole lab's
memory split three ways, and the most the host could hold with what binds."""

from __future__ import annotations

from pathlib import Path

from contract.limits import EADDRNOTAVAIL, EMFILE, ENFILE, ENOMEM
from lab.host import doctor
from lab.host.ceiling import KERNEL_SOCKET_BYTES, SERVER_PROCESS_RSS_BYTES, binding
from lab.host.facts import HostFacts
from lab.host.workers import LOCUST_PROCESS_RSS_BYTES, PARKED_USER_RSS_BYTES, USER_RSS_BYTES
from lab.scenario.loader import load_scenario, parse_scenario

GiB = 1 << 30
C500K = Path(__file__).resolve().parents[3] / "scenarios" / "c500k.yaml"
HOST = HostFacts.from_record({"cpus": 2, "mem_bytes": 24 * GiB,
                              "mem_available_bytes": 22 * GiB, "nofile_hard": 20000,
                              "file_max": 2_466_170, "pid_max": 4_194_304,
                              "ip_local_port_range": "32768 60999"})


def test_c500k_top_step_sizes_and_memory():
    sc = load_scenario(C500K)
    (spec,) = sc.servers
    assert sc.max_connections == 500_000
    assert doctor.sizes(spec, sc, HOST, 500_000) == (28, 26)  # 500k x 1.1 / 19994; / 19900
    mem = doctor.memory_at(spec, sc, HOST, 500_000)
    assert mem.kernel == 500_000 * 2 * KERNEL_SOCKET_BYTES
    # echo users at a pace park (loadgen/parking.py): no greenlet while held
    assert mem.load == 500_000 * PARKED_USER_RSS_BYTES + 27 * LOCUST_PROCESS_RSS_BYTES
    assert mem.servers == 28 * SERVER_PROCESS_RSS_BYTES + 500_000 * 210
    assert doctor.memory_refusals(sc, HOST) == []


def test_the_host_max_is_memory_bound_and_what_fits_is_refused_past_it():
    """With 12 GiB available memory binds: parked users (4 KB), the servers'
    connections and both ends' sockets."""
    sc = load_scenario(C500K)
    (spec,) = sc.servers
    small = HostFacts.from_record({**HOST.to_record(), "mem_available_bytes": 12 * GiB})
    most = binding(doctor.host_ceilings(spec, sc, small, "local"))
    assert most.limit == ENOMEM and 700_000 < most.connections < 900_000
    assert doctor.memory_at(spec, sc, small, most.connections).total <= 12 * GiB
    assert doctor.memory_at(spec, sc, small, most.connections + 1).total > 12 * GiB
    over = parse_scenario(C500K.read_text().replace("[100000, 250000, 500000]",
                                                    f"[{most.connections + 1000}]"), "o.yaml")
    (why,) = doctor.memory_refusals(over, small)
    assert f"about {most.connections} fit" in why and "kernel sockets" in why
    text = doctor.doctor_text(sc, (False, "off"), backends=("local",), facts=small)
    assert f"this host: up to ~{most.connections}" in text and "binds first: ENOMEM" in text
    assert "top step 500000: 28 server process(es), 26 worker(s)" in text


def test_on_the_reference_host_the_file_table_binds_before_memory():
    """22 GiB available: parked users leave the whole lab ~12.4 KB a
    connection, so fs.file-max (both ends of every connection) binds at
    1,233,085; with users that keep a live greenlet (11 KB: slow readers
    here) memory binds first, at about a million."""
    sc = load_scenario(C500K)
    (spec,) = sc.servers
    most = binding(doctor.host_ceilings(spec, sc, HOST, "local"))
    assert most.limit == ENFILE and most.connections == 2_466_170 // 2
    churn = parse_scenario(C500K.read_text().replace("message_size: 64",
                                                     "message_size: 64\n  read_chunk: 16"),
                           "c.yaml")
    (cspec,) = churn.servers
    most = binding(doctor.host_ceilings(cspec, churn, HOST, "local"))
    assert most.limit == ENOMEM and 900_000 < most.connections < 1_100_000
    assert doctor.memory_at(cspec, churn, HOST, 500_000).load == (
        500_000 * USER_RSS_BYTES + 27 * LOCUST_PROCESS_RSS_BYTES)


def test_with_more_memory_the_next_walls_are_the_file_table_and_addresses():
    sc = load_scenario(C500K)
    (spec,) = sc.servers
    big = HostFacts.from_record({**HOST.to_record(), "mem_available_bytes": 1 << 40})
    most = binding(doctor.host_ceilings(spec, sc, big, "local"))
    assert most.limit == ENFILE and most.connections == 2_466_170 // 2  # both ends
    bigger = HostFacts.from_record({**big.to_record(), "file_max": 10**8})
    most = binding(doctor.host_ceilings(spec, sc, bigger, "local"))
    assert most.limit == EADDRNOTAVAIL and most.connections == 122 * 19_900
    fixed = parse_scenario(C500K.read_text().replace("processes: auto", "processes: 4"),
                           "f.yaml")
    (four,) = fixed.servers
    assert binding(doctor.host_ceilings(four, fixed, HOST, "local")).limit == EMFILE


def test_a_conntrack_table_smaller_than_the_top_step_binds_first(tmp_path):
    """Loopback connections are tracked too: at nf_conntrack_max the kernel
    drops new SYNs, below the memory wall on this host's default (262,144)."""
    sc = load_scenario(C500K)
    (spec,) = sc.servers
    (path := tmp_path / "max").write_text("262144\n")
    table = doctor.conntrack_max(path)
    assert table == 262_144 and doctor.conntrack_max(tmp_path / "absent") is None
    most = binding(doctor.host_ceilings(spec, sc, HOST, "local", table))
    assert most.limit == doctor.CONNTRACK_LIMIT and most.connections == 262_144
    assert "sysctl -w net.netfilter.nf_conntrack_max" in most.why
    lines = doctor.scenario_lines(sc, HOST, "local", table)
    assert any("stops before the top step (500000)" in x for x in lines)
    roomy = doctor.scenario_lines(sc, HOST, "local", 2_000_000)
    assert any("reaches the top step" in x for x in roomy)
