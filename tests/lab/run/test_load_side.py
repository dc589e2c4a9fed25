"""The kernel's view of a step's sockets beyond the counters: the load's own
sockets in its namespaces (lab/run/load_ports.py) and the server's accept
queue through sock_diag (lab/run/accept_queue.py)."""

from __future__ import annotations

import socket
import struct
import time
from pathlib import Path

from lab.run import accept_queue, load_ports
from lab.run.accept_queue import AcceptQueueWatch

HEAD = ("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  "
        "timeout inode\n")


def _tcp(net: Path, sockets: list[tuple[str, int, str, int, str]]) -> None:
    """A ``tcp`` table of (local ip, port, remote ip, port, state hex)."""
    def addr(ip: str, port: int) -> str:
        return f"{int.from_bytes(socket.inet_aton(ip), 'little'):08X}:{port:04X}"

    net.mkdir(parents=True, exist_ok=True)
    lines = [f"{i:4d}: {addr(a, p)} {addr(b, q)} {st} 00000000:00000000 00:00000000 00000000"
             f"     0        0 {1000 + i} 1 0000000000000000 20 4 30 10 -1\n"
             for i, (a, p, b, q, st) in enumerate(sockets)]
    (net / "tcp").write_text(HEAD + "".join(lines))


def test_load_ports_count_time_wait_and_the_busiest_source_address(tmp_path):
    one, two = tmp_path / "w1" / "net", tmp_path / "w2" / "net"
    _tcp(one, [("0.0.0.0", 7000, "0.0.0.0", 0, "0A"),  # the server's listener: not the load's
               ("127.0.0.1", 7000, "127.0.0.10", 40000, "01"),  # the server's end
               ("127.0.0.10", 40000, "127.0.0.1", 7000, "01"),
               ("127.0.0.10", 40001, "127.0.0.1", 7000, "06"),
               ("127.0.0.10", 40002, "127.0.0.1", 7000, "06"),
               ("127.0.0.11", 40000, "127.0.0.1", 7000, "02"),
               ("127.0.0.10", 40003, "127.0.0.1", 8089, "01")])  # another port: not counted
    # A second worker's namespace: the same address is another address there.
    _tcp(two, [("127.0.0.10", 50000, "127.0.0.1", 7000, "06")])
    assert load_ports.read([one], 7000) == (2, 3)
    assert load_ports.read([one, two], 7000) == (3, 3)
    assert load_ports.read([tmp_path / "gone"], 7000) is None


def test_load_ports_keep_each_steps_most_and_space_their_readings(tmp_path):
    net = tmp_path / "net"
    _tcp(net, [("127.0.0.10", 40000 + i, "127.0.0.1", 7000, "06") for i in range(5)])
    ticks = iter([0.0, 0.2, 0.0, 0.2])  # each reading "takes" 0.2 s
    ports = load_ports.LoadPorts([net], 7000, clock=lambda: next(ticks))
    ports.sample(100.0)
    ports.sample(101.0)  # within 10 x 0.2 s of the last: skipped
    _tcp(net, [("127.0.0.10", 40000, "127.0.0.1", 7000, "06")])
    ports.sample(102.5)
    assert [s[1] for s in ports.samples] == [5, 1]
    assert ports.step(99.0, 103.0) == {"load_time_wait": 5, "load_ports_max": 5}
    assert ports.step(102.0, 103.0) == {"load_time_wait": 1, "load_ports_max": 1}
    assert ports.step(200.0, 300.0) == {"load_time_wait": None, "load_ports_max": None}
    assert load_ports.LoadPorts([], 7000).step(0.0, 1.0)["load_ports_max"] is None


def _diag_message(state: int, port: int, queued: int, size: int) -> bytes:
    body = struct.pack("=BBBB", socket.AF_INET, state, 0, 0) + struct.pack(">H", port)
    body += bytes(46) + struct.pack("=IIIII", 0, queued, size, 0, 1)
    return accept_queue.HEADER.pack(16 + len(body), 20, 2, 1, 0) + body


def test_sock_diag_replies_are_read_for_listeners_on_the_port_only():
    done = accept_queue.HEADER.pack(20, accept_queue.NLMSG_DONE, 2, 1, 0) + bytes(4)
    data = (_diag_message(10, 7000, 6, 5) + _diag_message(10, 8089, 0, 128)
            + _diag_message(1, 7000, 3, 0) + done)
    assert accept_queue.parse(data, 7000) == ([(6, 5)], True)
    assert accept_queue.parse(_diag_message(10, 7000, 1, 5), 7000) == ([(1, 5)], False)


def test_the_kernel_reports_a_listen_5_queue_and_the_connections_waiting_in_it():
    """A real listener with backlog 5 that never accepts: sock_diag gives the
    queue's size and how many completed handshakes wait in it."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(5)
    port = server.getsockname()[1]
    clients = [socket.create_connection(("127.0.0.1", port), timeout=2) for _ in range(3)]
    watch = AcceptQueueWatch(Path("/proc/net"), port, interval=0.01).start()
    try:
        deadline = time.monotonic() + 5
        while len(watch.samples) < 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        got = watch.step(None, time.time())
        assert got == {"accept_queue_max": 5, "accept_queue_peak": 3}
        assert watch.step(time.time() + 60, None)["accept_queue_peak"] is None
    finally:
        watch.stop()
        for c in clients:
            c.close()
        server.close()


def test_no_namespace_to_read_leaves_the_cells_empty():
    watch = AcceptQueueWatch(None, 7000).start()
    assert watch.sock is None
    assert watch.step(None, None) == {"accept_queue_max": None, "accept_queue_peak": None}
    watch.stop()


def test_an_overflow_proves_the_queue_was_full_where_the_samples_missed_it():
    """A completed handshake is dropped only while the queue holds size + 1:
    ListenOverflows growing in the step raises a sampled peak to that."""
    seen = {"accept_queue_max": 5, "accept_queue_peak": 1}
    assert accept_queue.with_overflows(seen, 70)["accept_queue_peak"] == 6
    assert accept_queue.with_overflows(seen, 0) == seen  # no overflow: what was seen
    assert accept_queue.with_overflows(seen, None) == seen  # not read: likewise
    higher = {"accept_queue_max": 5, "accept_queue_peak": 6}
    assert accept_queue.with_overflows(higher, 3) == higher
    unread = {"accept_queue_max": None, "accept_queue_peak": None}
    assert accept_queue.with_overflows(unread, 70) == unread  # no size: nothing to prove
    missed = {"accept_queue_max": 128, "accept_queue_peak": None}
    assert accept_queue.with_overflows(missed, 1)["accept_queue_peak"] == 129
