"""Per-call cost of select, poll and epoll with N registered descriptors, k active.

    .venv/bin/python benchmarks/selector_cost.py
    .venv/bin/python benchmarks/selector_cost.py --sizes 10,1000,15000 --repeat 3

The method of libevent's ``test/bench.c``, in Python: N descriptors (both
ends of N/2 socketpairs) are registered for reading and k of them are made
readable by writing one byte into their peer; then the readiness call is
timed (``select.select(fds, [], [], 0)``, ``poll.poll(0)``,
``epoll.poll(0)``), each returning the k ready descriptors. Every repetition
builds fresh descriptors and a fresh poller and times the *first* call on
them (``first_call_us``, the figure reported), then 20 more calls on the same
set (``steady_call_us``, their mean: the data is never read, so the same k
stay ready). The cost includes CPython's share: building select's fd_sets
from a list, poll's ``pollfd`` array (rebuilt on the first call after a
registration), the result list.

N runs from 10 to 15000 (the process needs ``nofile`` >= N + a few; it raises
its soft limit to the hard one). select's line ends at 1024: a descriptor
>= FD_SETSIZE cannot be put in an fd_set.

Output: ``benchmarks/out/selector_cost.csv`` (every repetition) and ``.png``
(median of the repetitions).
"""

from __future__ import annotations

import argparse
import select
import socket
import statistics
import sys
import time

from _common import OUT, machine, pyplot, raise_nofile, write_csv

from contract.limits import FD_SETSIZE

STEADY_CALLS = 20


def _select(fds):
    return lambda: select.select(fds, [], [], 0)


def _poll(fds):
    p = select.poll()
    for fd in fds:
        p.register(fd, select.POLLIN)
    return lambda: p.poll(0)


def _epoll(fds):
    ep = select.epoll()
    for fd in fds:
        ep.register(fd, select.EPOLLIN)
    call = lambda: ep.poll(0)  # noqa: E731
    call.close = ep.close
    return call


METHODS = {"select": _select, "poll": _poll, "epoll": _epoll}


def one(method: str, n: int, k: int) -> dict | None:
    """Fresh descriptors and poller; time the first call and the steady ones."""
    pairs = [socket.socketpair() for _ in range((n + 1) // 2)]
    ends = [s for pair in pairs for s in pair][:n]
    peer = {}
    for a, b in pairs:
        peer[a.fileno()], peer[b.fileno()] = b, a
    fds = [s.fileno() for s in ends]
    try:
        if method == "select" and max(fds) >= FD_SETSIZE:
            return None
        step = max(n // k, 1)
        active = fds[::step][:k]
        for fd in active:
            peer[fd].send(b"x")
        call = METHODS[method](fds)
        t = time.perf_counter_ns()
        ready = call()
        first = time.perf_counter_ns() - t
        r = ready[0] if method == "select" else ready
        assert len(r) == k, (method, n, k, len(r))
        t = time.perf_counter_ns()
        for _ in range(STEADY_CALLS):
            call()
        steady = (time.perf_counter_ns() - t) / STEADY_CALLS
        getattr(call, "close", lambda: None)()
        return {"first_call_us": round(first / 1000, 2), "steady_call_us": round(steady / 1000, 3)}
    finally:
        for s in ends + [pair[1] for pair in pairs if pair[1] not in ends]:
            s.close()


def plot(rows: list[dict], sizes: list[int], ks: list[int]) -> None:
    plt = pyplot()
    fig, axes = plt.subplots(1, len(ks), figsize=(6 * len(ks), 5), squeeze=False)
    for ax, k in zip(axes[0], ks, strict=True):
        for method, color in zip(METHODS, ("tab:red", "tab:orange", "tab:green"), strict=True):
            pts = []
            for n in sizes:
                mine = [r for r in rows if (r["method"], r["n"], r["k"]) == (method, n, k)]
                if mine:
                    pts.append((n, statistics.median(r["first_call_us"] for r in mine),
                                statistics.median(r["steady_call_us"] for r in mine)))  # fmt: skip
            if not pts:
                continue
            xs = [p[0] for p in pts]
            ax.plot(xs, [p[1] for p in pts], "o-", color=color, label=f"{method} first call")
            ax.plot(xs, [p[2] for p in pts], ":", color=color, label=f"{method} steady")
        ax.axvline(FD_SETSIZE, color="grey", ls="--", lw=0.8)
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("registered descriptors N")
        ax.set_ylabel("µs per call")
        ax.set_title(f"k = {k} active")
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=8)
    fig.suptitle("selector_cost: one readiness call with N idle + k active descriptors")
    fig.tight_layout()
    fig.savefig(OUT / "selector_cost.png", dpi=110)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", default="10,50,100,250,500,1000,2500,5000,10000,15000")
    p.add_argument("--active", default="1,100")
    p.add_argument("--repeat", type=int, default=5)
    args = p.parse_args(argv)
    hard = raise_nofile()
    sizes = [int(n) for n in args.sizes.split(",")]
    ks = [int(k) for k in args.active.split(",")]
    facts = machine()
    rows = []
    for n in sizes:
        if n + 16 > hard:
            print(f"skip N={n}: the open-file hard limit is {hard}", file=sys.stderr)
            continue
        for k in (k for k in ks if k <= n):
            for rep in range(args.repeat):
                for method in METHODS:
                    result = one(method, n, k)
                    if result is not None:
                        rows.append({"method": method, "n": n, "k": k, "rep": rep,
                                     **result, **facts})  # fmt: skip
            line = []
            for method in METHODS:
                mine = [r["first_call_us"] for r in rows if (r["method"], r["n"], r["k"]) ==
                        (method, n, k)]  # fmt: skip
                line.append(f"{method} {statistics.median(mine):9.1f}" if mine else f"{method} -")
            print(f"N={n:6} k={k:4}  first-call µs: " + "  ".join(line), flush=True)
    print("wrote", write_csv("selector_cost.csv", rows))
    plot(rows, sizes, ks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
