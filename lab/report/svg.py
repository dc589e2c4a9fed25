"""A small SVG chart renderer for report.html: axes, ticks, polylines, points.

Why our own and not matplotlib's SVG backend: the report needs, per data point,
an element that knows its model, step, x and y. Here every point is one
``<circle>`` whose ``<title>`` child holds exactly that text; browsers show an
element's ``<title>`` as a native tooltip on hover, so values appear under the
mouse with no library, no script and no font file. Every model's line and
points sit in one ``<g data-series="MODEL">``, so one CSS rule (``.off``) hides
a model and a ``:has(:hover)`` rule dims the others. matplotlib's SVG output
would need its artists mapped back to data after the fact (gids, then
post-processing of paths it may have simplified or clipped), and it writes text
as glyph paths or with font references; the page would be larger and the
mapping fragile. Vector output stays sharp at any zoom either way.

The renderer knows nothing about runs: :mod:`lab.report.figures` and
:mod:`lab.report.timeline` turn a run into :class:`Panel` objects. Output is
plain inline SVG (no ``xmlns``: HTML5 parses inline ``<svg>`` without it, and
the page keeps no URL at all).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from html import escape

FONT = "font-family:system-ui,sans-serif"


@dataclass
class Point:
    """One data point; ``title`` is its hover text, ``limit`` marks a limit row,
    ``hollow`` a client-bound one (the load generator's number, not the server's)."""

    x: float
    y: float
    title: str
    limit: str | None = None
    hollow: bool = False
    lo: float | None = None  # the min–max band over repeats, when there is one
    hi: float | None = None


@dataclass
class Line:
    """One model's series in a panel (``key`` is the model: hide/show and colour)."""

    key: str
    color: str
    points: list[Point]
    dash: str = ""  # SVG stroke-dasharray, "" for solid
    width: float = 1.4
    radius: float = 2.6
    label_limits: bool = True  # write the limit kind beside its point (once per model)


@dataclass
class Rule:
    """A reference line across the plot: horizontal (``vertical=False``) or vertical."""

    value: float
    label: str = ""
    vertical: bool = False
    color: str = "#888"
    dash: str = "4 3"
    width: float = 1.0
    label_at: float = 0.0  # vertical: label this many px below the plot top, < 0: above
    # the bottom; horizontal: < 0 puts the label at the left end (so labels do not collide)


@dataclass
class Panel:
    """One plot area with its axes."""

    title: str
    xlabel: str
    ylabel: str
    lines: list[Line] = field(default_factory=list)
    rules: list[Rule] = field(default_factory=list)
    diagonal: bool = False  # draw y = x (held = target)
    xlog: bool = False
    ylog: bool = False
    y_zero: bool = True  # include 0 on a linear y axis
    x_zero: bool = False
    x_span: tuple[float, float] | None = None  # force this x range in (shared time axes)
    empty_text: str = "no data"


def fmt(value: float) -> str:
    """A number for a tick or a tooltip: 4 significant digits, thousands separators."""
    if value == 0:
        return "0"
    a = abs(value)
    if a >= 1000:
        return f"{value:,.0f}"
    if a >= 1:
        return f"{value:.4g}"
    return f"{value:.3g}"


def auto_log(values: list[float], ratio: float = 30.0) -> bool:
    """Log scale when every value is positive and they span more than ``ratio``;
    a zero or negative value keeps the axis linear so no point is dropped."""
    return bool(values) and min(values) > 0 and max(values) / min(values) > ratio


class Scale:
    """Data → pixel on one axis, with tick positions; linear or log10."""

    def __init__(self, lo: float, hi: float, px0: float, px1: float, log: bool,
                 zero: bool = False) -> None:
        self.log = log
        if log:
            lo, hi = math.log10(lo), math.log10(hi)
            if hi - lo < 1e-9:
                lo, hi = lo - 0.5, hi + 0.5
            pad = (hi - lo) * 0.05
            # Positive data never gets a negative axis (no "-500 connections").
            self.lo, self.hi = (max(lo - pad, 0.0) if lo > 0 else lo - pad), hi + pad
        else:
            if zero:
                lo, hi = min(lo, 0.0), max(hi, 0.0)
            if hi - lo < 1e-12:
                d = abs(hi) * 0.1 or 1.0
                lo, hi = lo - d, hi + d
            # Like matplotlib: the axis spans the data plus 4 % each side (a point or
            # an SLO line on the frame would be half hidden, its label clipped), and
            # the ticks are the round numbers inside that span.
            pad = (hi - lo) * 0.04
            self.step = _nice((hi - lo) / 5)
            # Positive data never gets a negative axis (no "-500 connections").
            self.lo, self.hi = (max(lo - pad, 0.0) if lo > 0 else lo - pad), hi + pad
        self.px0, self.px1 = px0, px1

    def __call__(self, v: float) -> float:
        t = math.log10(v) if self.log else v
        return self.px0 + (t - self.lo) / (self.hi - self.lo) * (self.px1 - self.px0)

    def ticks(self) -> list[float]:
        if not self.log:
            first = math.ceil(self.lo / self.step - 1e-9)
            last = math.floor(self.hi / self.step + 1e-9)
            return [i * self.step for i in range(first, last + 1)]
        decades = range(math.floor(self.lo), math.ceil(self.hi) + 1)
        mults = (1, 2, 5) if self.hi - self.lo <= 3 else (1,)
        out = [m * 10.0**d for d in decades for m in mults]
        return [t for t in out if self.lo <= math.log10(t) <= self.hi]


def _nice(raw: float) -> float:
    exp = math.floor(math.log10(raw))
    for m in (1, 2, 2.5, 5, 10):
        if m * 10**exp >= raw:
            return m * 10**exp
    return 10 ** (exp + 1)


def _text(x: float, y: float, s: str, anchor: str = "middle", size: int = 11,
          extra: str = "") -> str:
    return (f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" font-size="{size}" '
            f'style="{FONT}"{extra}>{escape(s)}</text>')


def render_panel(panel: Panel, x0: float, y0: float, w: float, h: float, uid: str) -> str:
    """SVG for one panel placed at (x0, y0) with size (w, h); ``uid`` makes ids unique."""
    left, right, top, bottom = 62.0, 14.0, 26.0, 42.0
    px0, px1, py0, py1 = x0 + left, x0 + w - right, y0 + h - bottom, y0 + top
    out = [_text(x0 + w / 2, y0 + 16, panel.title, size=13, extra=' font-weight="600"')]
    pts = [p for ln in panel.lines for p in ln.points]
    out.append(f'<rect x="{px0:.1f}" y="{py1:.1f}" width="{px1 - px0:.1f}" '
               f'height="{py0 - py1:.1f}" fill="#fff" stroke="#999"/>')
    out.append(_text((px0 + px1) / 2, y0 + h - 8, panel.xlabel))
    ly = (py0 + py1) / 2
    out.append(_text(x0 + 14, ly, panel.ylabel, extra=f' transform="rotate(-90 {x0 + 14} {ly})"'))
    if not pts:
        out.append(_text((px0 + px1) / 2, ly, panel.empty_text, size=13, extra=' fill="#a00"'))
        return "\n".join(out)
    xs = [p.x for p in pts] + [r.value for r in panel.rules if r.vertical]
    xs += list(panel.x_span or ())
    ys = [p.y for p in pts] + [r.value for r in panel.rules if not r.vertical]
    ys += [v for p in pts for v in (p.lo, p.hi) if v is not None]  # bands stay in the plot
    if panel.diagonal:
        ys += [min(xs), max(xs)]
    if panel.xlog:
        xs = [v for v in xs if v > 0]
    if panel.ylog:
        ys = [v for v in ys if v > 0]
    sx = Scale(min(xs), max(xs), px0, px1, panel.xlog, panel.x_zero)
    sy = Scale(min(ys), max(ys), py0, py1, panel.ylog, panel.y_zero)
    for t in sx.ticks():
        x = sx(t)
        out.append(f'<line x1="{x:.1f}" y1="{py0:.1f}" x2="{x:.1f}" y2="{py1:.1f}" '
                   'stroke="#eee"/>')
        out.append(_text(x, py0 + 14, fmt(t), size=10))
    for t in sy.ticks():
        y = sy(t)
        out.append(f'<line x1="{px0:.1f}" y1="{y:.1f}" x2="{px1:.1f}" y2="{y:.1f}" '
                   'stroke="#eee"/>')
        out.append(_text(px0 - 4, y + 3.5, fmt(t), anchor="end", size=10))
    clip = f"clip-{uid}"
    out.append(f'<clipPath id="{clip}"><rect x="{px0:.1f}" y="{py1:.1f}" '
               f'width="{px1 - px0:.1f}" height="{py0 - py1:.1f}"/></clipPath>')
    out.append(f'<g clip-path="url(#{clip})">')
    if panel.diagonal:
        lo = max(min(xs), 10**sx.lo if sx.log else sx.lo)
        hi = 10**sx.hi if sx.log else sx.hi
        out.append(f'<line x1="{sx(lo):.1f}" y1="{sy(lo):.1f}" x2="{sx(hi):.1f}" '
                   f'y2="{sy(hi):.1f}" stroke="#ccc" stroke-width="1.5"/>')
    for r in panel.rules:
        out.append(_rule(r, sx, sy, px0, px1, py0, py1))
    out.append("</g>")
    shared = _coincident(panel, sx, sy)
    placed: list[tuple[float, float, str]] = []
    for ln in panel.lines:
        out.append(_line(ln, sx, sy, panel, shared, px1, placed))
    return "\n".join(out)


def _coincident(panel: Panel, sx: Scale, sy: Scale) -> dict[tuple[int, int], list[str]]:
    """Models whose points land on the same pixel: only the top circle gets the
    mouse, so every tooltip there names the others too."""
    at: dict[tuple[int, int], list[str]] = {}
    for ln in panel.lines:
        for p in ln.points:
            if (p.x > 0 or not panel.xlog) and (p.y > 0 or not panel.ylog):
                key = (round(sx(p.x)), round(sy(p.y)))
                if ln.key not in at.setdefault(key, []):
                    at[key].append(ln.key)
    return at


def _rule(r: Rule, sx: Scale, sy: Scale, px0: float, px1: float, py0: float,
          py1: float) -> str:
    style = (f'stroke="{r.color}" stroke-width="{r.width}"'
             + (f' stroke-dasharray="{r.dash}"' if r.dash else ""))
    if r.vertical:
        x = sx(r.value)
        line = f'<line x1="{x:.1f}" y1="{py0:.1f}" x2="{x:.1f}" y2="{py1:.1f}" {style}/>'
        ly = py1 + 11 + r.label_at if r.label_at >= 0 else py0 + r.label_at
        label = _text(x + 3, ly, r.label, anchor="start", size=10,
                      extra=f' fill="{r.color}"') if r.label else ""
    else:
        y = sy(r.value)
        line = f'<line x1="{px0:.1f}" y1="{y:.1f}" x2="{px1:.1f}" y2="{y:.1f}" {style}/>'
        left = r.label_at < 0
        label = _text(px0 + 4 if left else px1 - 4, y - 3, r.label,
                      anchor="start" if left else "end", size=10,
                      extra=f' fill="{r.color}"') if r.label else ""
    title = f"<title>{escape(r.label)}</title>" if r.label else ""
    return f'<g class="rule">{line}{label}{title}</g>'


def _line(ln: Line, sx: Scale, sy: Scale, panel: Panel,
          shared: dict[tuple[int, int], list[str]], px1: float,
          placed: list[tuple[float, float, str]]) -> str:
    pts = [p for p in ln.points if (p.x > 0 or not panel.xlog) and (p.y > 0 or not panel.ylog)]
    coords = " ".join(f"{sx(p.x):.1f},{sy(p.y):.1f}" for p in pts)
    dash = f' stroke-dasharray="{ln.dash}"' if ln.dash else ""
    out = [f'<g class="series" data-series="{escape(ln.key)}">']
    banded = [p for p in pts if p.lo is not None and p.hi is not None
              and (p.lo > 0 or not panel.ylog)]
    if len(banded) >= 2:  # the min–max band over repeats, under the median line
        edge = [f"{sx(p.x):.1f},{sy(p.hi):.1f}" for p in banded] + [
            f"{sx(p.x):.1f},{sy(p.lo):.1f}" for p in reversed(banded)]
        out.append(f'<polygon class="band" points="{" ".join(edge)}" fill="{ln.color}" '
                   'fill-opacity="0.15" stroke="none"/>')
    out.append(f'<polyline points="{coords}" fill="none" stroke="{ln.color}" '
               f'stroke-width="{ln.width}"{dash} stroke-linejoin="round"/>')
    for p in pts:
        x, y = sx(p.x), sy(p.y)
        if p.limit:
            d = 6.0
            out.append(f'<path d="M{x - d:.1f},{y - d:.1f}L{x + d:.1f},{y + d:.1f}'
                       f'M{x - d:.1f},{y + d:.1f}L{x + d:.1f},{y - d:.1f}" stroke="#000" '
                       f'stroke-width="3.2"/><path d="M{x - d:.1f},{y - d:.1f}L{x + d:.1f},'
                       f'{y + d:.1f}M{x - d:.1f},{y + d:.1f}L{x + d:.1f},{y - d:.1f}" '
                       f'stroke="{ln.color}" stroke-width="1.8"/>')
            # One label per spot: with 14 models several hit FD_SETSIZE at the same
            # place; their X marks and tooltips remain, the stacked words would not read.
            near = any(k == p.limit and abs(x - a) < 40 and abs(y - b) < 30
                       for a, b, k in placed)
            if ln.label_limits and not near:
                placed.append((x, y, p.limit))
                right = x < px1 - 90
                out.append(_text(x + 8 if right else x - 8, y - 8, p.limit,
                                 anchor="start" if right else "end", size=10,
                                 extra=f' fill="{ln.color}" font-weight="600"'))
        r = ln.radius + (2.5 if p.limit else 0)
        ring = ' stroke="#000" stroke-width="1"' if p.limit else ""
        cls = ' class="limit"' if p.limit else ""
        others = [k for k in shared.get((round(x), round(y)), []) if k != ln.key]
        title = p.title + (f"\n(same point: {', '.join(others)})" if others else "")
        if p.hollow:  # client-bound: an open ring in the model's colour, a little larger
            cls, r = ' class="hollow"', r + 1.0
            paint = f'fill="#fff" stroke="{ln.color}" stroke-width="1.6"'
        else:
            paint = f'fill="{ln.color}"{ring} fill-opacity="{0.35 if p.limit else 1}"'
        out.append(f'<circle{cls} cx="{x:.1f}" cy="{y:.1f}" r="{r:.1f}" {paint}><title>'
                   f"{escape(title)}</title></circle>")
    out.append("</g>")
    return "\n".join(out)


def render_figure(panels: list[Panel], uid: str, cols: int = 1, width: float = 620,
                  height: float = 340, label: str = "") -> str:
    """One ``<svg>`` holding ``panels`` in a grid of ``cols`` columns.

    The viewBox keeps the drawing's proportions while CSS lets it shrink to the
    page width; nothing is rasterised, so zooming in stays sharp."""
    uid = re.sub(r"[^A-Za-z0-9_-]", "-", uid)
    rows = math.ceil(len(panels) / cols) if panels else 1
    W, H = width * cols, height * rows
    body = [render_panel(p, (i % cols) * width, (i // cols) * height, width, height,
                         f"{uid}-{i}") for i, p in enumerate(panels)]
    aria = f' role="img" aria-label="{escape(label)}"' if label else ""
    return (f'<svg class="plot" viewBox="0 0 {W:.0f} {H:.0f}" width="{W:.0f}" '
            f'height="{H:.0f}" style="max-width:{W * 1.35:.0f}px"{aria}>\n'
            + "\n".join(body) + "\n</svg>")
