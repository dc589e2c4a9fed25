"""The kernel's receive timestamp of an echo's reply (``SO_TIMESTAMPNS``).

With ``SO_TIMESTAMPNS`` set on a socket the kernel stamps each incoming packet
with CLOCK_REALTIME as it enters the stack, and ``recvmsg()`` hands the stamp
of the last packet read back as an ``SCM_TIMESTAMPNS`` control message (a
``struct timespec``); :mod:`loadgen.client` explains why an echo's latency
ends there. ``IOLAB_RX_TIMESTAMPS=user`` turns it off (the fidelity
benchmark's comparison).
"""

from __future__ import annotations

import _socket
import os
import struct

from contract.env import RX_TIMESTAMPS

SO_TIMESTAMPNS = getattr(_socket, "SO_TIMESTAMPNS", 35)  # asm-generic; 3.11 lacks the name
SCM_TIMESTAMPNS = SO_TIMESTAMPNS
_TIMESPEC = struct.Struct("@qq")  # struct timespec on 64-bit Linux
ANC_SPACE = _socket.CMSG_SPACE(_TIMESPEC.size)  # recvmsg's ancillary buffer for one stamp
KERNEL_RX_STAMPS = os.environ.get(RX_TIMESTAMPS, "kernel") != "user"


def rx_stamp(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The receive time (ns since the epoch) in ``recvmsg``'s ancillary data."""
    sec, nsec = _TIMESPEC.unpack_from(ancillary[0][2])
    return sec * 1_000_000_000 + nsec
