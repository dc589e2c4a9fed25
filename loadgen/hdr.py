"""HDR histograms of microseconds: the resolution every latency is kept at.

Locust's own statistics round response times to two significant digits;
the lab keeps each latency in an HDR histogram (3 significant digits, 1 us
.. 60 s) whose compressed encoding travels from worker to master and adds
up exactly. Recording goes through :func:`bucket_us` into a plain dict of
counts (a tenth of ``record_value``'s cost, see :mod:`loadgen.meter`); the
histogram is built from the counts at a snapshot.
"""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 60_000_000
SIG_FIGS = 3
SUB_BUCKET_BITS = 11  # 2 * 10**SIG_FIGS rounded up to a power of two: 2048


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIG_FIGS)


def bucket_us(seconds: float) -> int:
    """``seconds`` in microseconds, truncated to the histogram's resolution
    (exact below 2048 us, then 11 significant bits) and clamped to its range."""
    us = int(seconds * 1_000_000)
    if us >= 1 << SUB_BUCKET_BITS:
        if us > HIGHEST_US:
            us = HIGHEST_US
        shift = us.bit_length() - SUB_BUCKET_BITS
        return us >> shift << shift
    return us if us >= LOWEST_US else LOWEST_US


def histogram_of(counts: dict[int, int]) -> HdrHistogram:
    """An HDR histogram from ``{bucket_us: count}``."""
    h = new_histogram()
    for us, n in counts.items():
        h.record_value(us, n)
    return h


def count_into(counts: dict[int, int], seconds: float) -> None:
    """Count one latency in ``{bucket_us: count}``."""
    us = bucket_us(seconds)
    counts[us] = counts.get(us, 0) + 1


def latency_fields(prefix: str, histogram: HdrHistogram) -> dict[str, float | None]:
    """``{prefix}p50_ms .. {prefix}max_ms`` of a histogram in us (null when empty)."""
    count = histogram.get_total_count()

    def ms(value_us: float) -> float | None:
        return round(value_us / 1000.0, 3) if count else None

    return {f"{prefix}p50_ms": ms(histogram.get_value_at_percentile(50)),
            f"{prefix}p90_ms": ms(histogram.get_value_at_percentile(90)),
            f"{prefix}p99_ms": ms(histogram.get_value_at_percentile(99)),
            f"{prefix}max_ms": ms(histogram.get_max_value())}
