"""A textbook fork-per-connection echo server, run by the tests as a custom
server: ``python tests/forking_echo.py PORT`` (127.0.0.1 only). The parent
accepts and forks; each child echoes one connection and exits; the parent
reaps its children from SIGCHLD, so their CPU lands in its ``cutime``.

``python tests/forking_echo.py PORT ACCEPT_DELAY_MS BACKLOG``: a server that
accepts slower than a ramp opens connections (it waits ``ACCEPT_DELAY_MS``
after each fork, like a server whose fork is costly) with a small accept
queue, so a burst of connects overflows it and SYNs are retried."""

import os
import signal
import socket
import sys
import time

PATH = os.path.abspath(__file__)


def reap(signum, frame):
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def serve(port: int, accept_delay_s: float = 0.0, backlog: int = 128) -> None:
    signal.signal(signal.SIGCHLD, reap)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(backlog)
    while True:
        try:
            conn, _ = listener.accept()
        except InterruptedError:
            continue
        if os.fork() == 0:
            listener.close()
            while data := conn.recv(65536):
                conn.sendall(data)
            os._exit(0)
        conn.close()
        if accept_delay_s:
            time.sleep(accept_delay_s)


if __name__ == "__main__":
    delay_ms = float(sys.argv[2]) if len(sys.argv) > 2 else 0.0
    serve(int(sys.argv[1]), delay_ms / 1000, int(sys.argv[3]) if len(sys.argv) > 3 else 128)
