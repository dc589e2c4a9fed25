"""The server's accept queue, as the kernel holds it: its size and how full it
got while the step's connections were opened.

A listening socket has two queues. The SYN (request) queue holds half-open
handshakes; the accept queue holds completed connections until the server
calls ``accept()``. The accept queue's size is ``min(backlog,
net.core.somaxconn)``, fixed at ``listen()``; the kernel lets it hold one
more than that (``sk_acceptq_is_full`` is ``>``), and a handshake that
completes when it is full is dropped (``ListenOverflows``): the client's
kernel retransmits and the connection is made a second or more later.

The kernel tells both through sock_diag (``NETLINK_SOCK_DIAG``, what ``ss
-lt`` shows): for a socket in LISTEN, ``idiag_rqueue`` is
``sk_ack_backlog`` (connections waiting in the accept queue now) and
``idiag_wqueue`` is ``sk_max_ack_backlog`` (its size)
(``net/ipv4/tcp_diag.c`` ``tcp_diag_get_info``). A dump asking for LISTEN
sockets only walks the listening hash, never the established one, so it
costs the same at 100 connections or 100,000.

``AcceptQueueWatch`` reads the server's listeners on its port (several with
``processes``/SO_REUSEPORT: the largest of each figure) every
``INTERVAL_S`` in a thread, and each row gets ``accept_queue_max`` (the
size) and ``accept_queue_peak`` (the most connections seen waiting at once
during the step's connect phase; a sample, so a burst shorter than the
interval can be missed, except that a step whose ``ListenOverflows`` grew
had the queue full, size + 1: :func:`with_overflows`). The server's
namespace: this machine's for the local backend, a container's through
``/proc/<pid>/ns/net`` (entered with ``setns`` by a short-lived thread
that opens the netlink socket; the socket stays in that namespace) when its
daemon is this machine's; elsewhere the cells stay empty.
"""

from __future__ import annotations

import ctypes
import os
import socket
import struct
import threading
import time
from pathlib import Path

NETLINK_SOCK_DIAG, SOCK_DIAG_BY_FAMILY = 4, 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
TCP_LISTEN = 10
CLONE_NEWNET = 0x40000000
HEADER = struct.Struct("=IHHII")  # struct nlmsghdr
# struct inet_diag_msg: family, state, timer, retrans; the 48-byte sockid
# (sport and dport big-endian first); expires, rqueue, wqueue, uid, inode.
MSG = struct.Struct("=BBBB2s46sIIIII")
INTERVAL_S = 0.02


def request(family: int) -> bytes:
    """A dump request for every TCP socket in LISTEN of ``family``."""
    body = struct.pack("=BBBBI", family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_LISTEN) + bytes(48)
    return HEADER.pack(HEADER.size + len(body), SOCK_DIAG_BY_FAMILY,
                       NLM_F_REQUEST | NLM_F_DUMP, 1, 0) + body


def parse(data: bytes, port: int) -> tuple[list[tuple[int, int]], bool]:
    """The ``(queued, size)`` of each listener on ``port`` in one netlink
    read, and whether the dump ended (NLMSG_DONE)."""
    out, off = [], 0
    while off + HEADER.size <= len(data):
        length, kind, _, _, _ = HEADER.unpack_from(data, off)
        if length < HEADER.size:
            break
        if kind == NLMSG_DONE:
            return out, True
        if kind == NLMSG_ERROR:
            raise OSError("sock_diag refused the dump")
        if length >= HEADER.size + MSG.size:
            fields = MSG.unpack_from(data, off + HEADER.size)
            state, sport, queued, size = fields[1], fields[4], fields[7], fields[8]
            if state == TCP_LISTEN and struct.unpack(">H", sport)[0] == port:
                out.append((queued, size))
        off += (length + 3) & ~3
    return out, False


def open_diag(netns: Path | None) -> socket.socket:
    """A sock_diag socket in the namespace ``netns`` (None: this process's)."""
    if netns is None:
        return socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    made: list[socket.socket | BaseException] = []

    def enter() -> None:  # setns changes only this thread's namespace
        try:
            fd = os.open(netns, os.O_RDONLY)
            try:
                if ctypes.CDLL(None, use_errno=True).setns(fd, CLONE_NEWNET) != 0:
                    raise OSError(ctypes.get_errno(), f"setns {netns}")
            finally:
                os.close(fd)
            made.append(socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            made.append(exc)

    thread = threading.Thread(target=enter, name="iolab-netns", daemon=True)
    thread.start()
    thread.join()
    if not made or isinstance(made[0], BaseException):
        raise OSError(f"cannot enter {netns}: {made[0] if made else 'no answer'}")
    return made[0]


def listeners(sock: socket.socket, port: int) -> list[tuple[int, int]]:
    """``(queued, size)`` of every TCP listener on ``port`` (IPv4 and IPv6)."""
    out: list[tuple[int, int]] = []
    for family in (socket.AF_INET, socket.AF_INET6):
        sock.send(request(family))
        done = False
        while not done:
            found, done = parse(sock.recv(65536), port)
            out += found
    return out


def namespace_of(net_proc: Path | None) -> Path | None | bool:
    """The ``ns/net`` file behind a ``/proc/.../net`` dir: None for this
    process's own (``/proc/net``), False when there is none to read."""
    if net_proc is None:
        return False
    if net_proc == Path("/proc/net"):
        return None
    return net_proc.parent / "ns" / "net"


class AcceptQueueWatch:
    """The server's listeners on its port, sampled in a thread."""

    def __init__(self, net_proc: Path | None, port: int | str | None,
                 interval: float = INTERVAL_S):
        self.port, self.interval = (int(port) if port else None), interval
        self.samples: list[tuple[float, int, int]] = []  # (time, most queued, largest size)
        self.sock: socket.socket | None = None
        self.stopped = threading.Event()
        netns = namespace_of(net_proc)
        if self.port and netns is not False:
            try:
                self.sock = open_diag(netns)  # type: ignore[arg-type]
            except OSError:
                self.sock = None

    def start(self) -> AcceptQueueWatch:
        if self.sock is not None:
            threading.Thread(target=self._run, name="iolab-accept-queue", daemon=True).start()
        return self

    def _run(self) -> None:
        assert self.sock is not None and self.port is not None
        while not self.stopped.wait(self.interval):
            try:
                found = listeners(self.sock, self.port)
            except OSError:
                return
            if found:
                self.samples.append((time.time(), max(q for q, _ in found),
                                     max(s for _, s in found)))

    def stop(self) -> None:
        self.stopped.set()
        if self.sock is not None:
            self.sock.close()

    def step(self, t_start: float | None, t_end: float | None) -> dict[str, int | None]:
        """The queue's size and its peak from ``t_start`` to ``t_end`` (the
        step's connect phase); both None when nothing was read."""
        seen = [s for s in self.samples if (t_start is None or s[0] >= t_start)
                and (t_end is None or s[0] <= t_end)]
        last = self.samples[-1][2] if self.samples else None
        return {"accept_queue_max": max((s[2] for s in seen), default=last),
                "accept_queue_peak": max((s[1] for s in seen), default=None)}


def with_overflows(queue: dict[str, int | None], overflows: int | None) -> dict[str, int | None]:
    """``queue`` with the peak the kernel's overflow count proves. A completed
    handshake is dropped only while the accept queue holds more than its size
    (``sk_acceptq_is_full``: ``sk_ack_backlog > sk_max_ack_backlog``), so a
    step whose ``ListenOverflows`` grew had a queue of size + 1 at least once,
    however briefly: at 1,000 connects/s a listen(5) queue overflowed 70 times
    in a second in which 53 samples 20 ms apart saw it non-empty once or never."""
    size, peak = queue.get("accept_queue_max"), queue.get("accept_queue_peak")
    if size is None or not overflows:
        return queue
    return {**queue, "accept_queue_peak": max(peak or 0, size + 1)}
