"""Is the latency the lab reports the server's? The lab's generator against an
independent reference client, same server, same load.

    .venv/bin/python benchmarks/loadgen_fidelity.py              # ~7 min here
    .venv/bin/python benchmarks/loadgen_fidelity.py --connections 8000 --rounds 1

One epoll server (``python -m servers epoll --nofile max``) on loopback takes,
in turn, at 2000, 8000 and 15000 connections (each sending 64 bytes once a
second, staggered), interleaved within each round:

``ref``       a small independent client: one ``select.epoll`` loop in plain
              Python (no gevent, no Locust), a timer heap for the sends,
              latency from ``perf_counter`` before ``send()`` to
              ``perf_counter`` once the whole echo is read. It is lean (about
              8 us of CPU per echo), so its own wake-up delay is small.
``lab``       the lab's generator as the lab runs it: one standalone Locust
              process (the ``LocalRunner``, i.e. one worker) through
              ``loadgen/locustfile.py`` with ``--steps N:HOLD``, pace 1 s,
              ``--schedule closed``, spawn rate 2000/s; the step record's
              hold-window p50/p99 (kernel receive timestamps,
              ``loadgen/client.py``), its ``loadgen_cpu_max`` and
              ``loadgen_lag_p99_ms``.
``lab-user``  the same, with ``IOLAB_RX_TIMESTAMPS=user``: latency read in
              user space when the greenlet gets the reply (what the lab
              reported before): the difference to ``lab`` is the generator's
              own wake-up delay.

Target (issue #9, part 7): at 8000 connections per worker the lab's p99 is
within 2x the reference's, or within 1 ms of it, whichever is larger.
Output: ``benchmarks/out/loadgen_fidelity.csv`` (one row per run) and
``benchmarks/out/loadgen_fidelity.png`` (p50 and p99 per client, medians over
the rounds, every run as a dot); the Locust logs and step files in
``benchmarks/out/loadgen_fidelity/``.
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import select
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    OUT,
    ROOT,
    ServerProcess,
    machine,
    markdown_table,
    pyplot,
    raise_nofile,
    write_csv,
)

CONNECTIONS = (2000, 8000, 15000)
MESSAGE_SIZE = 64
PACE_S = 1.0
SPAWN_RATE = 2000
CLIENTS = ("ref", "lab", "lab-user")
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)


# -- the reference client (its own process: --ref) ---------------------------------------
def reference(host: str, port: int, n: int, hold: float, source_ip: str) -> dict[str, Any]:
    """``n`` connections, each echoing 64 bytes once a second at evenly
    staggered phases; latencies of the echoes completed in the ``hold``
    seconds after a 2 s warm-up."""
    payload = bytes(MESSAGE_SIZE)
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.setsockopt(socket.SOL_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        s.bind((source_ip, 0))
        s.connect((host, port))
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setblocking(False)
        socks.append(s)
    ep = select.epoll()
    index = {}
    for i, s in enumerate(socks):
        ep.register(s.fileno(), select.EPOLLIN)
        index[s.fileno()] = i
    perf = time.perf_counter
    t0 = perf() + 0.2
    due = [(t0 + i * PACE_S / n, i) for i in range(n)]  # already a heap
    sent, got = [0.0] * n, [0] * n
    buf = bytearray(MESSAGE_SIZE)
    latencies: list[float] = []
    start, end = t0 + 2.0, t0 + 2.0 + hold
    cpu0 = None
    while True:
        now = perf()
        if now >= end:
            break
        if cpu0 is None and now >= start:
            cpu0 = os.times()
        for fd, _ in ep.poll(max(0.0, due[0][0] - now)):
            i = index[fd]
            k = socks[i].recv_into(buf)
            if not k:
                raise SystemExit("the server closed a connection")
            got[i] += k
            if got[i] >= MESSAGE_SIZE:
                t = perf()
                got[i] = 0
                if t >= start:
                    latencies.append(t - sent[i])
        now = perf()
        while due[0][0] <= now:
            at, i = heapq.heappop(due)
            sent[i] = perf()
            socks[i].send(payload)
            heapq.heappush(due, (at + PACE_S, i))
    cpu1 = os.times()
    for s in socks:
        s.close()
    latencies.sort()

    def q(p: float) -> float:
        return round(latencies[min(len(latencies) - 1, int(p * len(latencies)))] * 1000, 3)

    cpu = (cpu1.user + cpu1.system - cpu0.user - cpu0.system) / hold if cpu0 else None
    return {"echo_count": len(latencies), "rps": round(len(latencies) / hold, 1),
            "p50_ms": q(0.50), "p99_ms": q(0.99), "max_ms": round(latencies[-1] * 1000, 3),
            "cpu": round(cpu, 3) if cpu is not None else None}


def run_reference(srv: Any, n: int, hold: float, source_ip: str) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--ref", srv.host, str(srv.port), str(n),
                          str(hold), source_ip],
                         cwd=ROOT, capture_output=True, text=True, timeout=hold + 120)
    if out.returncode:
        raise SystemExit(f"reference client failed:\n{out.stderr[-2000:]}")
    return json.loads(out.stdout)


# -- the lab's generator --------------------------------------------------------------------
def run_lab(srv: Any, n: int, hold: float, source_ip: str, workdir: Path,
            rx: str) -> dict[str, Any]:
    tag = f"{rx}-{n}-{time.time_ns()}"
    results, log = workdir / f"steps-{tag}.jsonl", workdir / f"locust-{tag}.log"
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    env["IOLAB_RX_TIMESTAMPS"] = rx
    args = [sys.executable, "-m", "locust", "-f", "loadgen/locustfile.py",
            "--host", f"tcp://{srv.host}:{srv.port}", "--steps", f"{n}:{hold:g}s",
            "--step-spawn-rate", str(SPAWN_RATE), "--step-results", str(results),
            "--message-size", str(MESSAGE_SIZE), "--pace", f"{PACE_S:g}",
            "--connect-timeout", "5", "--io-timeout", "5", "--schedule", "closed",
            "--source-ips", source_ip, "--headless", "--only-summary", "EchoUser"]
    with log.open("w") as f:
        proc = subprocess.run(args, cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=f,
                              stderr=subprocess.STDOUT, timeout=n / SPAWN_RATE + hold + 120)
    lines = results.read_text().splitlines() if results.exists() else []
    if not lines:
        raise SystemExit(f"no step record (exit {proc.returncode}); see {log}")
    rec = json.loads(lines[-1])
    return {k: rec[k] for k in ("echo_count", "rps", "p50_ms", "p99_ms", "max_ms",
                                "loadgen_cpu_max", "loadgen_lag_p99_ms", "connected")} | {
        "cpu": rec["loadgen_cpu_max"], "failures": json.dumps(rec["failures"]),
        "lag_max_ms": max((w["lag_max_ms"] or 0) for w in rec["worker_shares"])}


# -- the whole comparison --------------------------------------------------------------------
def measure(connections: list[int], rounds: int, hold: float, clients: list[str]
            ) -> list[dict[str, Any]]:
    workdir = OUT / "loadgen_fidelity"
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    ip = 10  # a fresh source address per run: no TIME_WAIT left over from the last one
    with ServerProcess("epoll", "--nofile", "max", stats_interval=5.0) as srv:
        for r in range(rounds):
            for n in connections:
                for client in clients:
                    ip += 1
                    source = f"127.0.1.{ip}"
                    facts = machine()
                    if client == "ref":
                        got = run_reference(srv, n, hold, source)
                    else:
                        got = run_lab(srv, n, hold, source, workdir,
                                      "user" if client == "lab-user" else "kernel")
                    row = {"round": r, "client": client, "connections": n, **got, **facts}
                    rows.append(row)
                    print(f"round {r} {client:8} {n:6}: p50 {row['p50_ms']} p99 {row['p99_ms']}"
                          f" ms, {row['rps']}/s, cpu {row.get('cpu')}, lag p99 "
                          f"{row.get('loadgen_lag_p99_ms', '')}", flush=True)
    return rows


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Medians per client and connection count, the lab/ref ratio and the target."""
    def med(values) -> float:
        return round(statistics.median(values), 3)

    out = []
    for n in sorted({r["connections"] for r in rows}):
        ref = [r for r in rows if r["client"] == "ref" and r["connections"] == n]
        ref_p99 = med(r["p99_ms"] for r in ref) if ref else None
        for client in CLIENTS:
            mine = [r for r in rows if r["client"] == client and r["connections"] == n]
            if not mine:
                continue
            p99 = med(r["p99_ms"] for r in mine)
            bound = max(2 * ref_p99, ref_p99 + 1.0) if ref_p99 is not None else None
            lags = [r["loadgen_lag_p99_ms"] for r in mine if r.get("loadgen_lag_p99_ms")]
            out.append({
                "connections": n, "client": client, "runs": len(mine),
                "p50_ms": med(r["p50_ms"] for r in mine), "p99_ms": p99,
                "p99_runs": " ".join(f"{r['p99_ms']:g}" for r in mine),
                "vs_ref_p99": round(p99 / ref_p99, 2) if ref_p99 else None,
                "target_p99_ms": round(bound, 3) if bound and client != "ref" else None,
                "met": (p99 <= bound) if bound and client != "ref" else None,
                "cpu": med(r["cpu"] for r in mine if r.get("cpu") is not None),
                "lag_p99_ms": med(lags) if lags else None,
                "lag_p99_runs": " ".join(f"{x:g}" for x in lags),
            })
    return out


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    colours = {"ref": "#1b7837", "lab": "#2166ac", "lab-user": "#b2182b"}
    for ax, key in zip(axes, ("p50_ms", "p99_ms"), strict=True):
        for client in CLIENTS:
            mine = [r for r in rows if r["client"] == client]
            if not mine:
                continue
            ns = sorted({r["connections"] for r in mine})
            meds = [statistics.median(r[key] for r in mine if r["connections"] == n) for n in ns]
            ax.plot(ns, meds, "-o", color=colours[client], label=client)
            ax.scatter([r["connections"] for r in mine], [r[key] for r in mine],
                       color=colours[client], alpha=0.35, s=14)
        ax.set_yscale("log")
        ax.set_xlabel("connections (one worker), 1 echo/s each")
        ax.set_title(key.replace("_ms", "") + " echo latency (ms)")
        ax.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("ms (log)")
    axes[1].legend(loc="upper left", bbox_to_anchor=(1.02, 1.0))
    fig.suptitle("loadgen fidelity: the lab's generator vs an independent epoll client")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--connections", default=",".join(map(str, CONNECTIONS)))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--hold", type=float, default=10.0, help="seconds measured per run")
    ap.add_argument("--clients", default=",".join(CLIENTS))
    ap.add_argument("--ref", nargs=5, metavar=("HOST", "PORT", "N", "HOLD", "SOURCE_IP"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    raise_nofile()
    if args.ref:
        h, p, n, hold, src = args.ref
        print(json.dumps(reference(h, int(p), int(n), float(hold), src)))
        return 0
    rows = measure([int(x) for x in args.connections.split(",")], args.rounds, args.hold,
                   args.clients.split(","))
    csv_path = write_csv("loadgen_fidelity.csv", rows)
    table = summary(rows)
    write_csv("loadgen_fidelity_summary.csv", table)
    plot(rows, OUT / "loadgen_fidelity.png")
    print(markdown_table(table, list(table[0])))
    print(f"wrote {csv_path}, {OUT / 'loadgen_fidelity.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
