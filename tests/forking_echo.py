"""A textbook fork-per-connection echo server, run by the tests as a custom
server: ``python tests/forking_echo.py PORT`` (127.0.0.1 only). The parent
accepts and forks; each child echoes one connection and exits; the parent
reaps its children from SIGCHLD, so their CPU lands in its ``cutime``."""

import os
import signal
import socket
import sys

PATH = os.path.abspath(__file__)


def reap(signum, frame):
    try:
        while os.waitpid(-1, os.WNOHANG)[0] > 0:
            pass
    except ChildProcessError:
        pass


def serve(port: int) -> None:
    signal.signal(signal.SIGCHLD, reap)
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(128)
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


if __name__ == "__main__":
    serve(int(sys.argv[1]))
