"""A select() server written like the tutorial the project grew from: no
descriptor check, so when the 1021st client arrives its socket gets descriptor
1024 and ``select.select`` raises ``ValueError: filedescriptor out of range in
select()`` — the process dies. The lab must name that ``FD_SETSIZE``, on the
step whose ramp was in progress, with about 1020 connections held.

``--reply upper`` answers ``data.upper()`` like the tutorial's first version:
not an echo server, so the lab must stop it after one step with ``mismatch``.

``--backlog 5`` is the textbook's ``listen(5)``: a burst of connects overflows
the accept queue, the kernel drops handshakes (ListenOverflows) and the
clients' SYNs are retransmitted after 1 s, 3 s, ... — every connection is
made, late (tests/lab/run/test_phases_run.py).

Run: python tutorial_select_server.py --port 9100 [--reply echo|upper] [--backlog N]
"""

import argparse
import resource
import select
import socket


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--reply", choices=("echo", "upper"), default="echo")
    p.add_argument("--backlog", type=int, default=1024)
    args = p.parse_args()
    reply = bytes.upper if args.reply == "upper" else bytes
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))  # EMFILE is not the wall here
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", args.port))
    listener.listen(args.backlog)
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
                s.sendall(reply(data))
            else:
                inputs.remove(s)
                s.close()


if __name__ == "__main__":
    main()
