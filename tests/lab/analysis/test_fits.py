"""The noise a fit carries (lab/analysis/fits.py ``Fit.spread`` and ``error``):
each fitted point predicted from a fit of the others, in the cost's own unit
and relative to it. The holdout check (lab/analysis/holdout.py) compares a
miss with it, so a wrong value turns a failed extrapolation into "noise" or
the reverse."""

from __future__ import annotations

import pytest

from lab.analysis.fits import FLAT, LINEAR, choose, flat, line


def test_flat_spread_is_the_leave_one_out_miss_in_the_costs_unit():
    # each point against the median of the other two: 2 vs 3.5, 3 vs 3, 4 vs 2.5
    fit = flat([(1000, 2.0), (2000, 3.0), (4000, 4.0)])
    assert fit.a == 3.0
    assert fit.spread == pytest.approx((1.5 + 0 + 1.5) / 3)
    assert fit.error == pytest.approx((1.5 / 2 + 0 + 1.5 / 4) / 3)


def test_an_exact_line_has_no_spread():
    fit = choose([(n, 100e-6 + 0.05e-6 * n) for n in (1000, 2000, 4000, 8000)])
    assert fit.kind == LINEAR
    assert fit.spread == pytest.approx(0, abs=1e-15) and fit.error == pytest.approx(0, abs=1e-9)


def test_the_chosen_fit_carries_its_own_spread():
    # flat wins on a wobble with no trend; its spread, not the rejected line's, is reported
    points = [(1000, 30e-6), (2000, 20e-6), (4000, 25e-6)]
    fit = choose(points)
    assert fit.kind == FLAT and fit.spread == flat(points).spread


def test_memory_spread_is_bytes_off_the_growth():
    # 300 B per connection, one step 64 KiB above the line: leaving it out, the
    # others' line misses it by exactly that, and left in it moves their predictions
    pts = [(n, 20e6 + 300 * n) for n in (500, 1000, 2000, 4000)]
    assert line(pts).spread == pytest.approx(0, abs=1e-6)
    bumped = [(x, y + (65536 if x == 2000 else 0)) for x, y in pts]
    fit = line(bumped)
    assert fit.kind == LINEAR and fit.spread is not None and 65536 / 3 < fit.spread < 2 * 65536
    # relative to the growth above the lowest step, the error is larger where growth is small
    assert fit.error is not None and fit.error > fit.spread / (300 * 3500)
