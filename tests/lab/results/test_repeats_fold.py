"""Folding repeated passes into per-step medians with bands, and the noise verdict."""

from __future__ import annotations

from lab.analysis.compare import noise
from lab.results.repeats import fold


def row(repeat: int, step: int, p99: float, t_end: float, **kw) -> dict:
    return {"model": "epoll", "repeat": repeat, "step": step, "p99_ms": p99, "connected": 100,
            "t_end": t_end, "limit": None, "client_bound": False, **kw}


def test_one_pass_comes_back_unchanged():
    rows = [row(0, 1, 2.0, 20.0), row(0, 0, 1.0, 10.0)]
    assert fold(rows) == sorted(rows, key=lambda r: r["step"])


def test_median_band_and_durations_over_passes():
    rows = [row(0, 0, 1.0, 100.0), row(0, 1, 5.0, 110.0),
            row(1, 0, 3.0, 500.0), row(1, 1, 9.0, 530.0),
            row(2, 0, 2.0, 900.0), row(2, 1, 7.0, 920.0, limit="EMFILE")]
    a, b = fold(rows)
    assert (a["p99_ms"], a["p99_ms_min"], a["p99_ms_max"], a["repeats"]) == (2.0, 1.0, 3.0, 3)
    assert b["p99_ms"] == 7.0 and b["limit"] is None  # the most common limit among passes
    assert b["t_end"] - a["t_end"] == 20.0  # the median of the passes' own durations


def test_client_bound_passes_are_left_out_unless_all_are():
    rows = [row(0, 0, 1.0, 1.0), row(1, 0, 500.0, 2.0, client_bound=True),
            row(2, 0, 3.0, 3.0)]
    (r,) = fold(rows)
    assert r["p99_ms"] == 2.0 and r["repeats"] == 2 and r["client_bound"] is False
    (r,) = fold([row(0, 0, 1.0, 1.0, client_bound=True), row(1, 0, 3.0, 2.0, client_bound=True)])
    assert r["client_bound"] is True and r["repeats"] == 2


def test_within_noise_exactly_when_bands_overlap():
    a = {"repeats": 3, "rps_min": 90.0, "rps_max": 110.0}
    assert noise(a, {"repeats": 3, "rps_min": 105.0, "rps_max": 130.0}, "rps") == "within noise"
    assert noise(a, {"repeats": 3, "rps_min": 111.0, "rps_max": 130.0}, "rps") == "differs"
    assert noise(a, {"rps": 100.0}, "rps") == "n/a"  # measured once: no band
