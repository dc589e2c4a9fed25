"""``python -m servers MODEL [options]`` and ``python -m servers --list``.

Exit codes: 0 after SIGTERM/SIGINT (final event printed), 1 when the model
crashed (``--on-fd-limit crash``, an unexpected error), 2 for bad arguments or
a model that is unavailable here (one line on stderr).

``--processes N`` (N > 1, event-driven models) runs the server as N processes
under the supervisor of ``servers/prefork.py``; each child is this same
command with ``--processes 1 --reuseport`` (an internal flag: SO_REUSEPORT on
the listener) and the port the supervisor fixed.
"""

from __future__ import annotations

import argparse
import sys

import servers
from contract import defaults
from contract.models import MODELS, REUSEPORT_MODELS
from servers import core, prefork


def _nofile(value: str) -> str:
    if value == "max":
        return value
    try:
        n = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'max' or a number, got {value!r}") from None
    if n < 16:
        raise argparse.ArgumentTypeError(f"must be at least 16, got {n}")
    return value


def _port(value: str) -> int:
    n = int(value)
    if not 0 <= n <= 65535:
        raise argparse.ArgumentTypeError(f"must be 0..65535, got {n}")
    return n


def _positive(kind):
    def parse(value: str):
        n = kind(value)
        if n <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {value}")
        return n

    return parse


def _non_negative(value: str) -> int:
    n = int(value)
    if n < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {n}")
    return n


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, exit 2 (argparse prints usage too)
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m servers",
        description="Echo server for one Linux I/O model (see docs/design.md, servers contract).",
    )
    p.add_argument(
        "model",
        nargs="?",
        choices=list(MODELS),
        metavar="MODEL",
        help="one of: " + ", ".join(MODELS),
    )
    p.add_argument("--list", action="store_true", help="list models and whether they run here")
    p.add_argument("--host", default="0.0.0.0")
    p.add_argument("--port", type=_port, default=0, help="0 picks a free port (printed in READY)")
    p.add_argument("--backlog", type=_positive(int), default=defaults.BACKLOG)
    p.add_argument(
        "--nofile",
        type=_nofile,
        default=None,
        help="'max' (soft = hard limit) or N: the soft open-file limit",
    )
    p.add_argument(
        "--work-us",
        type=_non_negative,
        default=defaults.WORK_US,
        help="CPU microseconds of simulated work per message",
    )
    p.add_argument(
        "--block-us",
        type=_non_negative,
        default=defaults.BLOCK_US,
        help="microseconds the handler waits per message without CPU (a sleep; "
        "an event loop stops for everyone)",
    )
    p.add_argument(
        "--nodelay",
        action=argparse.BooleanOptionalAction,
        default=defaults.NODELAY,
        help="TCP_NODELAY on accepted sockets (--no-nodelay keeps Nagle's algorithm)",
    )
    p.add_argument("--stats-interval", type=_positive(float),
                   default=defaults.STATS_INTERVAL_S)
    p.add_argument(
        "--on-fd-limit",
        choices=list(defaults.ON_FD_LIMIT_CHOICES),
        default=defaults.ON_FD_LIMIT,
        help="select at descriptor 1024: close and count, or crash like the tutorial",
    )
    p.add_argument("--workers", type=_positive(int), default=defaults.THREADPOOL_WORKERS,
                   help="threadpool size")
    p.add_argument(
        "--processes",
        type=_positive(int),
        default=defaults.PROCESSES,
        help="N processes, each with its own SO_REUSEPORT listener and open-file limit "
        f"({', '.join(sorted(REUSEPORT_MODELS))})",
    )
    # Internal (servers/prefork.py's children): SO_REUSEPORT on the listener.
    p.add_argument("--reuseport", action="store_true", help=argparse.SUPPRESS)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else list(argv)
    opts = parser.parse_args(argv)  # bad arguments: one line on stderr, exit 2
    if opts.list:
        for name in MODELS:
            reason = servers.unavailable(name)
            state = "available" if reason is None else f"unavailable: {reason}"
            print(f"{name}\t{state}", flush=True)
        return 0
    if opts.model is None:
        parser.error("a MODEL or --list is required")
    if opts.processes > 1 and opts.model not in REUSEPORT_MODELS:
        parser.error(f"--processes applies to {', '.join(sorted(REUSEPORT_MODELS))} only, "
                     f"not {opts.model}")
    reason = servers.unavailable(opts.model)
    if reason is not None:
        print(f"python -m servers: {opts.model} is unavailable: {reason}", file=sys.stderr)
        return 2
    try:
        if opts.processes > 1:
            return prefork.run(opts.model, opts, argv)
        return core.run(opts.model, servers.load(opts.model).Server, opts)
    except (ValueError, OSError) as exc:  # set-up: --nofile above the hard limit, port in use
        print(f"python -m servers: {opts.model}: {exc}", file=sys.stderr)
        return 2
