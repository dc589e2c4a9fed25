"""How much load one Locust worker of ``loadgen/`` can make, and what it costs.

    .venv/bin/python benchmarks/loadgen_capacity.py            # everything (~4 min)
    .venv/bin/python benchmarks/loadgen_capacity.py --only flat --rounds 1 --seconds 5

Two measurements against the project's epoll server on loopback:

``flat``  Flat-out echo rate (``--pace 0``) of one Locust process with 100
          EchoUsers, next to a bare gevent client (100 greenlets on gevent
          sockets, the same 64-byte send/recv loop, no Locust, no timeouts) in
          the same run against the same server, alternating for ``--rounds``
          rounds. The ratio of the medians is the price of Locust's events
          and statistics and of this package's bookkeeping. Target: >= 0.7.
``held``  15,000 EchoUsers at pace 1 s (15,000 echoes/s offered), held by one
          worker and then by a master with two workers: achieved vs offered
          echo rate, p99, and RSS per user (the load processes' RSS growth from
          a 1-user step to the full step, over the users added). Targets with
          two workers: >= 0.95 of offered, p99 < 100 ms; <= 12 KB per user.

Rates on a shared machine move with everything else running on it, so every
row also has the CPU time the load generator and the server spent per echo
during the measured window (from ``/proc/PID/stat``) and the load average:
CPU per echo hardly moves with contention, and ``1e6 / cpu_us`` is the echo
rate one idle core could sustain. Results go to
``benchmarks/out/loadgen_capacity.csv`` and a table on stdout.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "benchmarks"))
from _common import markdown_table  # noqa: E402

OUT = ROOT / "benchmarks" / "out"
FLAT_USERS = 100
HELD_USERS = 15_000
MESSAGE_SIZE = 64
TICKS = os.sysconf("SC_CLK_TCK")


# -- the bare gevent client (runs in its own process: --bare) -------------------------
def bare_gevent(host: str, port: int, users: int, seconds: float, size: int) -> dict[str, Any]:
    """``users`` greenlets doing exactly the echo loop, nothing else."""
    import gevent
    from gevent import socket as gsocket

    payload = bytes(size)
    count = 0
    end = time.perf_counter() + seconds

    def user() -> None:
        nonlocal count
        sock = gsocket.create_connection((host, port))
        buf = bytearray(size)
        view = memoryview(buf)
        while time.perf_counter() < end:
            sock.sendall(payload)
            got = 0
            while got < size:
                got += sock.recv_into(view[got:], size - got)
            count += 1
        sock.close()

    cpu0, start = cpu_seconds(os.getpid()), time.perf_counter()
    gevent.joinall([gevent.spawn(user) for _ in range(users)])
    elapsed, cpu = time.perf_counter() - start, cpu_seconds(os.getpid()) - cpu0
    return {"echoes": count, "seconds": elapsed, "cpu_us_per_echo": cpu / max(count, 1) * 1e6}


# -- watching processes -------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0


class Sampler:
    """CPU and RSS of some processes, sampled with wall-clock times."""

    def __init__(self, load_pids: list[int], server_pid: int) -> None:
        self.load_pids, self.server_pid = load_pids, server_pid
        self.samples: list[tuple[float, float, int, float]] = []  # t, load cpu, load rss, srv cpu

    def sample(self) -> None:
        try:
            self.samples.append((
                time.time(), sum(cpu_seconds(p) for p in self.load_pids),
                sum(rss_bytes(p) for p in self.load_pids), cpu_seconds(self.server_pid)))
        except (OSError, IndexError, ValueError):
            pass  # a process just exited

    def at(self, t: float) -> tuple[float, float, int, float]:
        return min(self.samples, key=lambda s: abs(s[0] - t))

    def window(self, t0: float, t1: float) -> tuple[float, float]:
        """(load CPU s, server CPU s) between two wall-clock times."""
        a, b = self.at(t0), self.at(t1)
        return b[1] - a[1], b[3] - a[3]


# -- driving Locust ----------------------------------------------------------------------
def locust(args: list[str], log: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "LOCUST_SKIP_MONKEY_PATCH"}
    with log.open("w") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", "loadgen/locustfile.py", *args],
            cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def profile_later(pid: int, after: float, seconds: float, out: Path) -> subprocess.Popen:
    """py-spy (``pip install py-spy``) on ``pid`` for ``seconds``, ``after`` s from
    now: collapsed stacks ("frame;frame;... count" lines) in ``out``."""
    return subprocess.Popen(
        ["sh", "-c", f"sleep {after:g}; exec {Path(sys.executable).parent}/py-spy record "
                     f"-r 200 -f raw --nonblocking -d {seconds:g} -p {pid} -o {out}"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def top_frames(collapsed: Path, n: int = 12) -> list[tuple[float, str]]:
    """The frames the most samples were in (self time), as shares of all samples."""
    own: dict[str, int] = {}
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        total += int(count)
        leaf = stack.split(";")[-1]
        own[leaf] = own.get(leaf, 0) + int(count)
    ranked = sorted(own.items(), key=lambda kv: -kv[1])[:n]
    return [(round(100 * c / max(total, 1), 1), frame) for frame, c in ranked]


def run_steps(srv: Any, steps: str, workdir: Path, *, pace: float, workers: int,
              timeout: float, profile: tuple[float, float, Path] | None = None
              ) -> tuple[list[dict], Sampler, list[tuple[int, float, int]]]:
    """Run the steps against ``srv``; return the step records, the process
    samples, and (users, load RSS) as each record appeared. ``profile``:
    (after s, for s, output) for :func:`profile_later` on the first load process."""
    host = f"tcp://{srv.host}:{srv.port}"
    results = workdir / f"steps-{workers}w-{time.time_ns()}.jsonl"
    load = ["--pace", f"{pace:g}", "--message-size", str(MESSAGE_SIZE),
            "--connect-timeout", "10", "--io-timeout", "10"]
    args = ["--host", host, "--steps", steps, "--step-spawn-rate", "1000",
            "--step-results", str(results), *load, "--headless", "--only-summary"]
    port = free_port()
    if workers:
        args += ["--master", "--expect-workers", str(workers), "--master-bind-port", str(port)]
    procs = [locust([*args, "EchoUser"], workdir / f"master-{workers}w.log")]
    for i in range(workers):
        procs.append(locust(["--worker", "--master-host", "127.0.0.1", "--master-port",
                             str(port), *load, "EchoUser"], workdir / f"worker{i}.log"))
    sampler = Sampler([p.pid for p in (procs[1:] if workers else procs)], srv.pid)
    if profile is not None:
        after, seconds, out = profile
        procs.append(profile_later(sampler.load_pids[0], after, seconds, out))
    records: list[dict] = []
    rss_at_record: list[tuple[int, float, int]] = []
    deadline = time.monotonic() + timeout
    try:
        while procs[0].poll() is None and time.monotonic() < deadline:
            sampler.sample()
            lines = results.read_text().splitlines() if results.exists() else []
            for line in lines[len(records):]:
                records.append(json.loads(line))
                rss_at_record.append((records[-1]["users"], time.time(), sampler.samples[-1][2]))
            time.sleep(0.1)
    finally:
        for p in procs:
            if p.poll() is None:
                p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
    return records, sampler, rss_at_record


def cpu_per_echo(rec: dict, sampler: Sampler) -> tuple[float, float]:
    load_cpu, srv_cpu = sampler.window(rec.get("t_hold", rec["t_ramp_end"]), rec["t_end"])
    n = max(rec["echo_count"], 1)
    return load_cpu / n * 1e6, srv_cpu / n * 1e6


def flat(rounds: int, seconds: float, workdir: Path) -> list[dict[str, Any]]:
    from serverproc import ServerProcess

    locust_rates, bare_rates, locust_cpu, bare_cpu, p99s = [], [], [], [], []
    with ServerProcess("epoll", "--nofile", "max") as srv:
        for _ in range(rounds):
            records, sampler, _ = run_steps(srv, f"{FLAT_USERS}:{seconds:g}s", workdir,
                                            pace=0, workers=0, timeout=seconds + 60)
            rec = records[-1]
            locust_rates.append(rec["rps"])
            locust_cpu.append(cpu_per_echo(rec, sampler)[0])
            p99s.append(rec["p99_ms"])
            bare = json.loads(subprocess.run(
                [sys.executable, __file__, "--bare", srv.host, str(srv.port),
                 str(FLAT_USERS), str(seconds)],
                cwd=ROOT, capture_output=True, text=True, check=True).stdout)
            bare_rates.append(bare["echoes"] / bare["seconds"])
            bare_cpu.append(bare["cpu_us_per_echo"])
    med = statistics.median
    note = f"median of {rounds}: " + ", ".join(f"{x:.0f}" for x in locust_rates)
    return [
        row("flat", "bare gevent", FLAT_USERS, None, med(bare_rates), None, None, {},
            cpu_us=med(bare_cpu), note="rates " + ", ".join(f"{x:.0f}" for x in bare_rates)),
        row("flat", "locust EchoUser", FLAT_USERS, None, med(locust_rates), med(p99s), None,
            rec["failures"], ratio=med(locust_rates) / med(bare_rates),
            cpu_us=med(locust_cpu), note=note),
    ]


def held(users: int, hold: float, workers: int, workdir: Path,
         profile: bool = False) -> dict[str, Any]:
    from serverproc import ServerProcess

    # py-spy from a few seconds into the hold (the 1-user step, the ramp at
    # 1,000 users/s and start-up before it) for 10 s
    out = workdir / f"profile-{workers}w.txt"
    spy = (3 + users / 1000 + 8, min(10.0, max(hold - 10, 1.0)), out) if profile else None
    with ServerProcess("epoll", "--nofile", "max") as srv:
        records, sampler, rss = run_steps(srv, f"1:3s,{users}:{hold:g}s", workdir, pace=1.0,
                                          workers=workers, timeout=users / 1000 + hold + 120,
                                          profile=spy)
    if profile and out.exists():
        print(f"top frames (self time) of the first load process, {out}:")
        for share, frame in top_frames(out):
            print(f"  {share:5.1f} %  {frame}")
    if len(records) < 2:
        raise SystemExit(f"held {users} with {workers} workers: only {len(records)} steps; "
                         f"see the logs in {workdir}")
    full = records[1]
    (u0, _, rss0), (u1, _, rss1) = rss[0], rss[1]
    load_us, srv_us = cpu_per_echo(full, sampler)
    label = f"{workers} workers" if workers else "1 worker (standalone)"
    return row("held", label, users, users / 1.0, full["rps"], full["p99_ms"],
               (rss1 - rss0) / max(1, u1 - u0), full["failures"],
               ratio=full["rps"] / users, connected=full["connected"], p50=full["p50_ms"],
               cpu_us=load_us, server_cpu_us=srv_us)


def row(kind, client, users, offered, rate, p99, rss_per_user, failures, *, ratio=None,
        connected=None, p50=None, cpu_us=None, server_cpu_us=None, note="") -> dict[str, Any]:
    def r(x, n=1):
        return None if x is None else round(x, n)

    return {"measurement": kind, "client": client, "users": users, "offered_per_s": offered,
            "achieved_per_s": r(rate), "ratio": r(ratio, 3), "connected": connected,
            "p50_ms": p50, "p99_ms": p99,
            "rss_per_user_kb": None if rss_per_user is None else r(rss_per_user / 1024, 2),
            "loadgen_cpu_us_per_echo": r(cpu_us), "server_cpu_us_per_echo": r(server_cpu_us),
            "failures": json.dumps(failures or {}), "cpus": os.cpu_count(),
            "loadavg_1m": round(os.getloadavg()[0], 2), "note": note}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--only", choices=["flat", "held"], default=None)
    ap.add_argument("--rounds", type=int, default=3, help="flat-out rounds (alternating)")
    ap.add_argument("--seconds", type=float, default=8.0, help="flat-out duration per round")
    ap.add_argument("--hold", type=float, default=20.0, help="held step duration")
    ap.add_argument("--users", type=int, default=HELD_USERS)
    ap.add_argument("--workers", default="0,2", help="held runs: 0 = one standalone process")
    ap.add_argument("--out", type=Path, default=OUT / "loadgen_capacity.csv")
    ap.add_argument("--profile", action="store_true",
                    help="held: py-spy the load process during the hold; print its top frames")
    ap.add_argument("--bare", nargs=4, metavar=("HOST", "PORT", "USERS", "SECONDS"),
                    help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if args.bare:
        h, p, u, s = args.bare
        print(json.dumps(bare_gevent(h, int(p), int(u), float(s), MESSAGE_SIZE)))
        return 0
    workdir = OUT / "loadgen_capacity"
    workdir.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = []
    if args.only in (None, "flat"):
        rows += flat(args.rounds, args.seconds, workdir)
    if args.only in (None, "held"):
        rows += [held(args.users, args.hold, int(w), workdir, args.profile)
                 for w in args.workers.split(",")]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    cols = ["measurement", "client", "users", "offered_per_s", "achieved_per_s", "ratio",
            "p99_ms", "rss_per_user_kb", "loadgen_cpu_us_per_echo", "server_cpu_us_per_echo",
            "failures", "loadavg_1m"]
    print(markdown_table(rows, cols))
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
