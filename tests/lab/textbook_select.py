"""A tutorial-style echo server: one select() loop and ``listen(5)``.

The accept queue holds 5 completed handshakes; a burst of connects at 1000/s
overflows it, the kernel drops the handshake's last ACK (ListenOverflows),
and the client's kernel retransmits its SYN after 1 s, 3 s, ... — every
connection is made, late. Used by tests/lab/test_phases_run.py."""

import select
import socket
import sys


def main() -> None:
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", int(sys.argv[1])))
    listener.listen(5)
    clients: list[socket.socket] = []
    while True:
        readable, _, _ = select.select([listener, *clients], [], [])
        for sock in readable:
            if sock is listener:
                conn, _ = listener.accept()
                clients.append(conn)
                continue
            try:
                data = sock.recv(4096)
            except OSError:
                data = b""
            if data:
                sock.sendall(data)
            else:
                clients.remove(sock)
                sock.close()


if __name__ == "__main__":
    main()
