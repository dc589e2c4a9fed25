"""Writes the SYNTHETIC golden runs (hand-chosen plausible numbers, not measured).

Usage: python tests/data/runs/make_synthetic.py tests/data/runs
"""

import csv
import json
import sys
from pathlib import Path

COLS = (
    "model,server_kind,step,target_connections,connected,"
    "server_connections,peak_connections,rps,p50_ms,p90_ms,p99_ms,max_ms,"
    "echo_count,failures,connect_failures,failure_kinds,error_rate,limit,"
    "server_rss_bytes,server_cpu_s,server_cpu_user_s,server_cpu_sys_s,"
    "hold_s,active_users,kernel_sock_bytes,t_end"
).split(",")
HOST = {
    "kernel": "6.1.0-18-amd64",
    "cpus": 2,
    "mem_bytes": 25769803776,
    "nofile_hard": 20000,
    "file_max": 9223372036854775807,
    "nr_open": 1048576,
    "port_range": [32768, 60999],
    "somaxconn": 4096,
    "pid_max": 4194304,
    "docker_version": None,
}


def write(dirname, scenario, rows, models, hosts=HOST, backend="local"):
    d = Path(sys.argv[1]) / dirname
    (d / "logs").mkdir(parents=True, exist_ok=True)
    for m in models:
        (d / "logs" / f"{m}.log").write_text(
            f"READY 127.0.0.1:40000 model={m} pid=1 nofile=20000 (synthetic)\n"
        )
    with (d / "steps.csv").open("w", newline="") as f:
        w = csv.DictWriter(f, COLS)
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r[k]) for k in COLS})
    meta = {
        "format_version": 1,
        "scenario": scenario,
        "backend": backend,
        "unapplied": ["net.core.somaxconn (local backend)"],
        "hosts": {"local": hosts},
        "git_commit": "0000000synthetic",
        "started": "2026-11-28T06:00:00+00:00",
        "finished": "2026-11-28T06:04:10+00:00",
        "complete": True,
        "interrupted": False,
        "models": models,
        "rows": rows,
    }
    (d / "run.json").write_text(json.dumps(meta, indent=1))
    import yaml

    (d / "scenario.yaml").write_text(yaml.safe_dump(scenario, sort_keys=False))


def row(
    model,
    step,
    target,
    connected,
    rps,
    p50,
    p99,
    rss,
    cpu,
    hold,
    t_end,
    limit=None,
    fk="",
    kb=None,
    active=None,
    echo=None,
    fails=0,
    cfails=0,
):
    echo = int(rps * hold) if echo is None else echo
    fails += cfails  # a failed connect is a failed request too
    req = echo + fails + target
    return dict(
        model=model,
        server_kind="builtin",
        step=step,
        target_connections=target,
        connected=connected,
        server_connections=connected,
        peak_connections=connected,
        rps=rps,
        p50_ms=p50,
        p90_ms=None if p50 is None else round((p50 + p99) / 2, 2),
        p99_ms=p99,
        max_ms=None if p99 is None else round(p99 * 1.8, 2),
        echo_count=echo,
        failures=fails,
        connect_failures=cfails,
        failure_kinds=fk,
        error_rate=round(fails / req, 5) if req else 0,
        limit=limit,
        server_rss_bytes=rss,
        server_cpu_s=cpu,
        server_cpu_user_s=round(cpu * 0.6, 3),
        server_cpu_sys_s=round(cpu * 0.4, 3),
        hold_s=hold,
        active_users=active,
        kernel_sock_bytes=kb,
        t_end=t_end,
    )


# --- select / poll / epoll sweep -------------------------------------------------
steps = [250, 500, 1000, 1500, 2500]
hold = 10.0
servers = [
    {
        "name": m,
        "model": m,
        "limits": {"nofile": nf, "backlog": 1024, "sysctls": {}},
        "on_fd_limit": "refuse",
        "work_us": 0,
        "host": "local",
    }
    for m, nf in (("select", "max"), ("poll", "max"), ("epoll", 2048))
]
scenario = {
    "name": "select-poll-epoll",
    "description": "SYNTHETIC: select vs poll vs epoll across the 1024 wall",
    "backend": "local",
    "servers": servers,
    "load": {
        "user": "echo",
        "active_users": 0,
        "message_size": 64,
        "pace": "1s",
        "connect_rate": 500.0,
        "steps": [{"connections": s, "hold": f"{hold:g}s"} for s in steps],
        "workers": 1,
        "schedule": "closed",
    },
    "slo": {"p99_ms": 50.0, "error_rate": 0.01},
}
rows, t = [], 1795564800.0
plan = {
    # model: list of (connected, p50, p99, rss_MiB, cpu_per_step, limit, fk, fails, cfails)
    "select": [
        (250, 0.4, 2.1, 21.0, 0.9, None, "", 0, 0),
        (500, 0.7, 4.0, 22.1, 2.2, None, "", 0, 0),
        (1000, 1.5, 9.8, 24.3, 6.9, None, "", 0, 0),
        (1019, 1.6, 10.4, 24.4, 7.1, "FD_SETSIZE", "FD_SETSIZE=481", 0, 481),
    ],
    "poll": [
        (250, 0.4, 1.9, 21.0, 0.8, None, "", 0, 0),
        (500, 0.6, 3.6, 22.0, 2.0, None, "", 0, 0),
        (1000, 1.3, 8.7, 24.2, 6.1, None, "", 0, 0),
        (1500, 2.2, 16.0, 26.4, 12.8, None, "", 0, 0),
        (2500, 4.9, 61.0, 30.7, 33.0, None, "timeout=31", 31, 0),
    ],
    "epoll": [
        (250, 0.3, 1.2, 20.8, 0.5, None, "", 0, 0),
        (500, 0.3, 1.4, 21.7, 1.0, None, "", 0, 0),
        (1000, 0.4, 1.9, 23.8, 2.0, None, "", 0, 0),
        (1500, 0.4, 2.3, 25.9, 3.0, None, "", 0, 0),
        (2043, 0.5, 2.9, 28.1, 4.1, "EMFILE", "EMFILE=457", 0, 457),
    ],
}
models = {}
for m, pts in plan.items():
    cpu = 0.3
    for i, (conn, p50, p99, rss, dcpu, lim, fk, fails, cfails) in enumerate(pts):
        t += hold + steps[i] / 500.0
        cpu += dcpu
        kb = int(conn * 2 * 4096 * 1.1)  # both loopback ends, ~4.5 KiB each
        rows.append(
            row(
                m,
                i + 1,
                steps[i],
                conn,
                round(conn * 1.0 * (0.97 if fails else 1), 1),
                p50,
                p99,
                int(rss * 2**20),
                round(cpu, 3),
                hold,
                round(t, 3),
                lim,
                fk,
                kb,
                fails=fails,
                cfails=cfails,
            )
        )
    last = pts[-1][5]
    models[m] = {
        "kind": m,
        "limit": last,
        "stopped_at_step": len(pts) if last else None,
        "exit_code": 0,
        "log_tail": "",
        "final": {"peak_connections": pts[-1][0]},
    }
    t += 5
write("synthetic-select-poll-epoll", scenario, rows, models)

# --- idle vs active -------------------------------------------------------------
steps = [500, 2000, 5000, 10000]
active = 100
servers = [
    {
        "name": m,
        "model": m,
        "limits": {"nofile": "max", "backlog": 4096, "sysctls": {}},
        "host": "local",
    }
    for m in ("poll", "epoll")
]
scenario = {
    "name": "idle-vs-active",
    "description": "SYNTHETIC: 100 active echo users among many idle connections",
    "backend": "local",
    "servers": servers,
    "load": {
        "user": "idle",
        "active_users": active,
        "message_size": 64,
        "pace": "0.1s",
        "connect_rate": 1000.0,
        "steps": [{"connections": s, "hold": "8s"} for s in steps],
        "workers": 2,
        "schedule": "closed",
    },
    "slo": {"p99_ms": 20.0, "error_rate": 0.01},
}
rows, models = [], {}
lat = {
    "poll": [(0.5, 2.0), (1.6, 6.5), (3.9, 17.0), (8.1, 39.0)],
    "epoll": [(0.3, 1.1), (0.3, 1.2), (0.35, 1.4), (0.4, 1.6)],
}
for m in ("poll", "epoll"):
    cpu = 0.3
    for i, s in enumerate(steps):
        t += 8 + s / 1000
        p50, p99 = lat[m][i]
        rps = round(active / 0.1 * (0.9 if m == "poll" and i == 3 else 1.0), 1)
        cpu += 1.0 * (1 + (s / 1000 if m == "poll" else 0.05))
        rows.append(
            row(
                m,
                i + 1,
                s,
                s,
                rps,
                p50,
                p99,
                int((21 + s * 0.0042) * 2**20),
                round(cpu, 3),
                8.0,
                round(t, 3),
                kb=int(s * 2 * 4096 * 1.05),
                active=active,
            )
        )
    models[m] = {
        "kind": m,
        "limit": None,
        "stopped_at_step": None,
        "exit_code": 0,
        "log_tail": "",
        "final": {},
    }
write("synthetic-idle-vs-active", scenario, rows, models)
