"""``load.network`` and ``load.groups[].network``: the link the load side's
packets leave by, ``{delay: 50ms, loss: 1%, rate: 1mbit}``.

The values are ``tc``'s (``lab/host/tc.py`` applies them): ``rate`` in tc's
units (``bit``, ``kbit``, ``mbit``, ``gbit`` are bits per second; ``bps``,
``kbps``, ``mbps``, ``gbps`` are *bytes* per second, as tc spells them),
``delay`` a duration, ``loss`` a percentage of packets. Whether this
kernel can apply ``delay`` and ``loss`` (netem) is the run's question, not
the file's: ``run-lab`` asks it before anything starts
(:func:`lab.host.tc.netem_refusals`).
"""

from __future__ import annotations

import math
import re

import yaml

from lab.scenario.errors import Invalid
from lab.scenario.fields import Field, Section, is_none
from lab.scenario.nodes import Doc, duration, scalar
from lab.scenario.types import NetworkSpec

# tc's rate units (tc(8) "RATES"): bits per second, or bytes per second for *bps
RATE_UNITS = {"bit": 1, "kbit": 1_000, "mbit": 1_000_000, "gbit": 1_000_000_000,
              "bps": 8, "kbps": 8_000, "mbps": 8_000_000, "gbps": 8_000_000_000}
RATE_RE = re.compile(r"^\s*([-+]?\d+(?:\.\d+)?)\s*([A-Za-z]+)\s*$")
MIN_RATE_BPS = 8_000  # below 1 kB/s one full-size packet takes seconds: every echo times out
MAX_RATE_BPS = 100_000_000_000  # htb's rate64 takes more; no link the lab emulates is faster
MAX_DELAY_S = 10.0
RATE_EXAMPLE = "e.g. 1mbit, 500kbit or 10mbit (tc's units: bit, kbit, mbit, gbit; bps = bytes/s)"


def rate(doc: Doc, node: yaml.Node, path: str) -> int:
    """``1mbit`` -> 1000000 bits per second."""
    value = scalar(doc, node, path, "a rate")
    match = RATE_RE.match(value) if isinstance(value, str) else None
    if match is None:
        doc.fail(node, path, f"{value!r} is not a rate with a unit; write {RATE_EXAMPLE}")
    number, unit = float(match.group(1)), match.group(2).lower()
    if unit not in RATE_UNITS:
        doc.fail(node, path, f"'{match.group(2)}' is not a rate unit; write {RATE_EXAMPLE}")
    bps = number * RATE_UNITS[unit]
    if bps <= 0:
        doc.fail(node, path, f"{value} is not above zero; give a rate, {RATE_EXAMPLE}")
    if bps < MIN_RATE_BPS or not math.isfinite(bps) or bps > MAX_RATE_BPS:
        doc.fail(node, path, f"{value} is outside 8kbit .. 100gbit; give a rate in that range")
    return round(bps)


def rate_text(bps: int) -> str:
    """1000000 -> ``1mbit``: the largest bit unit that divides it (reads back equal)."""
    for unit in ("gbit", "mbit", "kbit"):
        if bps % RATE_UNITS[unit] == 0:
            return f"{bps // RATE_UNITS[unit]}{unit}"
    return f"{bps}bit"


def loss(doc: Doc, node: yaml.Node, path: str) -> float:
    """``1%`` -> 1.0 (percent of packets)."""
    value = scalar(doc, node, path, "a percentage")
    match = re.fullmatch(r"\s*([-+]?\d+(?:\.\d+)?)\s*%\s*", value) if isinstance(value, str) \
        else None
    if match is None:
        doc.fail(node, path, f"{value!r} is not a percentage; write e.g. 1% or 0.5%")
    pct = float(match.group(1))
    if not 0 < pct <= 100:
        doc.fail(node, path, f"{value} is not in (0%, 100%]; give e.g. 1% (a share of packets "
                             "dropped)")
    return pct


def delay(doc: Doc, node: yaml.Node, path: str) -> float:
    """A one-way delay added to every packet: ``50ms``; at most 10 s."""
    seconds = duration(doc, node, path)
    if seconds > MAX_DELAY_S:
        doc.fail(node, path, f"{node.value} is above {MAX_DELAY_S:g}s; give e.g. 50ms")
    return seconds


def _seconds(value: float) -> str:
    short = f"{value * 1000:g}"
    return f"{short}ms" if float(short) / 1000 == value else f"{value!r}s"


NETWORK = Section("network", NetworkSpec, (
    Field("delay", delay, attr="delay_s", dump=_seconds, omit=is_none),
    Field("loss", loss, attr="loss_pct", dump=lambda pct: f"{pct:g}%", omit=is_none),
    Field("rate", rate, attr="rate_bps", dump=rate_text, omit=is_none),
))


def network(doc: Doc, node: yaml.Node, path: str) -> NetworkSpec:
    """``{delay, loss, rate}``, at least one of them."""
    m = NETWORK.open(doc, node, path)
    got = NETWORK.given(doc, m)
    if m.failed:
        raise Invalid(None)  # already reported
    if not got:
        doc.fail(node, path, "shapes nothing; give at least one of delay: 50ms, loss: 1%, "
                             "rate: 1mbit")
    return NETWORK.build(got)


def describe(spec: NetworkSpec) -> str:
    """``delay 50ms, loss 1%, rate 1mbit`` (the report's scenario summary)."""
    return ", ".join(f"{k} {v}" for k, v in NETWORK.dump(spec).items())
