"""One active ping-pong client plus N idle connections, over real TCP.

    .venv/bin/python benchmarks/idle_vs_active.py
    .venv/bin/python benchmarks/idle_vs_active.py --models epoll --idle 0,5000 --seconds 2

For each of the select, poll and epoll servers (``--nofile max``), N idle
connections are opened first (N in 0, 500, 1000, 5000, 15000, added
step by step to the same server), then one client sends 64 bytes, waits for
the echo and repeats for ``--seconds``; that trial is run ``--repeat``
times (a fresh active connection each time) and the median kept. The rate shows what an idle
connection costs each model on every message of the active one: nothing for
epoll, an O(N) scan for poll; select cannot go past descriptor 1023 at all
(the idle connections beyond it, and then the active one, are refused and
counted under FD_SETSIZE).

Also recorded: the server's RSS, so RSS per idle connection
(``(rss(N) - rss(0)) / N``; user-space memory only, the kernel's socket
buffers are not in RSS), and server CPU per message.

Output: ``benchmarks/out/idle_vs_active.csv`` and ``.png``.
"""

from __future__ import annotations

import argparse
import sys
import time

from _common import (
    OUT,
    ServerProcess,
    close_all,
    cpu_s,
    machine,
    open_idle,
    ping_pong,
    pyplot,
    raise_nofile,
    write_csv,
)


def run_model(model: str, steps: list[int], seconds: float, repeat: int) -> list[dict]:
    rows = []
    idle = []
    with ServerProcess(model, "--nofile", "max", stats_interval=0.25) as srv:
        base = None
        actives = 0
        for n in steps:
            idle += open_idle(srv.host, srv.port, n - len(idle))

            # Wait until the server has dealt with every idle connection (and
            # with the active ones of earlier steps, closed by now).
            def settled_at(e, want=n + actives, n=n):
                return e["accepted"] + sum(e["refused"].values()) >= want and e["connections"] <= n

            settled = srv.wait_stats(settled_at, timeout=60)
            trials = []  # (rate, count, elapsed, t0, t1): the median trial is kept
            for _ in range(repeat):
                active = open_idle(srv.host, srv.port, 1)
                actives += len(active)
                t0 = time.time()
                count, elapsed = ping_pong(active[0], seconds) if active else (0, seconds)
                t1 = time.time()
                close_all(active)
                trials.append((count / elapsed, count, elapsed, t0, t1))
                if not count:
                    break
            _, count, elapsed, t0, t1 = sorted(trials)[len(trials) // 2]
            window = [e for e in srv.events("stats") if t0 <= e["time"] <= t1]
            cpu = cpu_s(window[-1]) - cpu_s(window[0]) if len(window) > 1 else None
            msgs = (window[-1]["bytes_in"] - window[0]["bytes_in"]) / 64 if window else 0
            base = settled["rss_bytes"] if base is None else base
            row = {
                "model": model,
                "idle": n,
                "idle_held_by_server": settled["connections"],
                "refused": sum(settled["refused"].values()),
                "status": "ok" if count else "refused: " + ",".join(settled["refused"]),
                "round_trips": count,
                "rate_per_s": round(count / elapsed, 1),
                "cpu_us_per_message": round(cpu / msgs * 1e6, 2) if cpu and msgs else None,
                "server_rss_bytes": settled["rss_bytes"],
                "rss_per_idle_bytes": round((settled["rss_bytes"] - base) / n, 1) if n else None,
            }
            rows.append(row)
            print(f"{model:7} idle={n:6} held={row['idle_held_by_server']:6} "
                  f"{row['rate_per_s']:>9.0f}/s  rss/idle={row['rss_per_idle_bytes']}  "
                  f"{row['status']}", flush=True)  # fmt: skip
        close_all(idle)
    zero = rows[0]["rate_per_s"] or None
    for row in rows:
        row["vs_no_idle"] = round(row["rate_per_s"] / zero, 3) if zero else None
    return rows


def plot(rows: list[dict], steps: list[int]) -> None:
    plt = pyplot()
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 5))
    xs = range(len(steps))
    for model in dict.fromkeys(r["model"] for r in rows):
        mine = {r["idle"]: r for r in rows if r["model"] == model}
        pts = [(i, mine[n]) for i, n in enumerate(steps) if n in mine and mine[n]["round_trips"]]
        ax1.plot([i for i, _ in pts], [r["rate_per_s"] for _, r in pts], "o-", label=model)
        ax2.plot([i for i, _ in pts], [r["vs_no_idle"] for _, r in pts], "o-", label=model)
    for ax in (ax1, ax2):
        ax.set_xticks(list(xs), [str(n) for n in steps])
        ax.set_xlabel("idle connections (select's line ends where it refuses)")
        ax.grid(alpha=0.3)
        ax.legend()
    ax1.set_ylabel("active client round trips/s (64 B)")
    ax1.set_yscale("log")
    ax2.set_ylabel("rate relative to no idle connections")
    ax2.axhline(0.85, color="grey", ls=":")
    fig.suptitle("idle_vs_active: what an idle connection costs the active one")
    fig.tight_layout()
    fig.savefig(OUT / "idle_vs_active.png", dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", default="select,poll,epoll")
    p.add_argument("--idle", default="0,500,1000,5000,15000")
    p.add_argument("--seconds", type=float, default=2.0)
    p.add_argument("--repeat", type=int, default=3, help="trials per step; the median is kept")
    args = p.parse_args(argv)
    raise_nofile()
    steps = sorted(int(n) for n in args.idle.split(","))
    facts = machine()
    rows = []
    for model in args.models.split(","):
        rows += [{**r, **facts} for r in run_model(model, steps, args.seconds, args.repeat)]
    print("wrote", write_csv("idle_vs_active.csv", rows))
    plot(rows, steps)
    return 0


if __name__ == "__main__":
    sys.exit(main())
