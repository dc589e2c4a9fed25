"""1 KiB echo with 10 clients against every model: requests/s and server CPU per message.

    .venv/bin/python benchmarks/echo_throughput.py                 # every available model
    .venv/bin/python benchmarks/echo_throughput.py --models epoll,uvloop --seconds 5

Ten connections each keep one 1 KiB message in flight (send, wait for the
whole echo, send again), driven by one epoll loop in this process; the server
runs in its own process. Both figures come from the server's own stats events
over the same interval: requests/s = messages echoed / time, CPU per message =
(user + sys CPU) / messages. uvloop is the reference row (``vs_uvloop`` is
CPU per message relative to it). Each model runs ``--repeat`` times,
interleaved with the others, and the median run (by CPU per message) is kept:
on a shared 2-core machine single runs vary by 10-20 %. The blocking model serves one connection at
a time, so its row is one client's rate (the other nine wait).

Output: ``benchmarks/out/echo_throughput.csv`` and ``.png``.
"""

from __future__ import annotations

import argparse
import select
import socket
import sys
import time

from _common import OUT, ServerProcess, cpu_s, machine, pyplot, write_csv

import servers

SIZE = 1024
CLIENTS = 10


def drive(host: str, port: int, seconds: float) -> int:
    """Flat-out ping-pong on CLIENTS connections for ``seconds``; messages done."""
    msg = b"m" * SIZE
    socks = {}
    ep = select.epoll()
    for _ in range(CLIENTS):
        s = socket.create_connection((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks[s.fileno()] = [s, 0]
        ep.register(s.fileno(), select.EPOLLIN)
        s.send(msg)
    buf = bytearray(65536)
    done = 0
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        for fd, _ in ep.poll(0.2):
            entry = socks[fd]
            try:
                n = entry[0].recv_into(buf)
            except BlockingIOError:
                continue
            if not n:
                raise RuntimeError("server closed a client connection")
            entry[1] += n
            while entry[1] >= SIZE:
                entry[1] -= SIZE
                done += 1
                entry[0].send(msg)
    for entry in socks.values():
        entry[0].close()
    ep.close()
    return done


def measure(model: str, seconds: float, warmup: float) -> dict:
    with ServerProcess(model, stats_interval=0.25) as srv:
        t0 = time.time() + warmup
        drive(srv.host, srv.port, warmup + seconds)
        t1 = time.time()
        window = [e for e in srv.events("stats") if t0 <= e["time"] <= t1]
        srv.terminate()
    first, last = window[0], window[-1]
    messages = (last["bytes_in"] - first["bytes_in"]) / SIZE
    elapsed = last["time"] - first["time"]
    cpu = cpu_s(last) - cpu_s(first)
    return {
        "model": model,
        "clients": CLIENTS,
        "message_bytes": SIZE,
        "seconds": round(elapsed, 3),
        "messages": int(messages),
        "requests_per_s": round(messages / elapsed, 1),
        "server_cpu_s": round(cpu, 3),
        "cpu_us_per_message": round(cpu / messages * 1e6, 2) if messages else None,
        "server_rss_bytes": last["rss_bytes"],
    }


def plot(rows: list[dict]) -> None:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    names = [r["model"] for r in rows]
    colors = ["tab:red" if n == "uvloop" else "tab:blue" for n in names]
    ax1.barh(names, [r["requests_per_s"] for r in rows], color=colors)
    ax1.set_xlabel("requests/s (1 KiB echo, 10 clients)")
    ax1.invert_yaxis()
    ax2.barh(names, [r["cpu_us_per_message"] or 0 for r in rows], color=colors)
    ax2.set_xlabel("server CPU µs per message (user + sys)")
    ax2.invert_yaxis()
    fig.suptitle("echo_throughput: every model, uvloop in red as the reference")
    fig.tight_layout()
    fig.savefig(OUT / "echo_throughput.png", dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default=",".join(servers.available_models()))
    p.add_argument("--seconds", type=float, default=3.0)
    p.add_argument("--warmup", type=float, default=0.5)
    p.add_argument("--repeat", type=int, default=3, help="runs per model; the median is kept")
    args = p.parse_args(argv)
    facts = machine()
    models = args.models.split(",")
    runs: dict[str, list[dict]] = {m: [] for m in models}
    for rep in range(args.repeat):  # interleaved, so a noisy minute hits every model
        for model in models:
            row = measure(model, args.seconds, args.warmup)
            runs[model].append(row)
            print(f"[{rep + 1}/{args.repeat}] {model:12} {row['requests_per_s']:>10.0f} req/s "
                  f"{row['cpu_us_per_message'] or 0:>8.2f} µs CPU/msg", flush=True)  # fmt: skip
    rows = []
    for model in models:  # the median run by CPU per message
        ordered = sorted(runs[model], key=lambda r: r["cpu_us_per_message"] or 0)
        rows.append({**ordered[len(ordered) // 2], "repeats": len(ordered), **facts})
    ref = next((r["cpu_us_per_message"] for r in rows if r["model"] == "uvloop"), None)
    for r in rows:
        r["vs_uvloop"] = (
            round(r["cpu_us_per_message"] / ref, 3) if ref and r["cpu_us_per_message"] else None
        )
    print("wrote", write_csv("echo_throughput.csv", rows))
    plot(rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
