"""A select() server written like the tutorial the project grew from: it
answers ``data.upper()``, not the bytes it got, so it is not an
echo server. The lab must stop it after its first step with ``mismatch``.

Run: python upper_select_server.py --port 9100
"""

import argparse
import select
import socket


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    args = p.parse_args()
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(1024)
    inputs = [listener]
    while True:
        readable, _, _ = select.select(inputs, [], [])
        for s in readable:
            if s is listener:
                conn, _ = listener.accept()
                inputs.append(conn)
                continue
            try:
                data = s.recv(4096)
            except OSError:
                data = b""
            if data:
                s.sendall(data.upper())
            else:
                inputs.remove(s)
                s.close()


if __name__ == "__main__":
    main()
