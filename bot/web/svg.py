"""Charts as SVG, drawn on the server: one time-series chart with an optional baseline band,
threshold lines, markers (verdict changes) and vertical rules (deploys, rollbacks).

Readable without colour: thresholds differ by dash pattern and carry a text label; verdict changes
are a shape per verdict (circle healthy, diamond degraded, triangle unhealthy) with the verdict
written beside it; rollbacks are a cross on the time axis labelled "rollback". Every drawn point is
a ``<circle class="pt">`` carrying ``data-at`` and ``data-value``, so the chart can be read back.
A long series is downsampled to the lowest and highest value of each of ``BUCKETS`` slices, which
keeps spikes visible and a 10,000-point chart far below 200 KB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

from chainpipe.core.clock import iso
from markupsafe import Markup, escape

WIDTH, HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 64, 150, 24, 44
BUCKETS = 400
SHAPES = {"healthy": "circle", "degraded": "diamond", "unhealthy": "triangle", "unknown": "square"}
COLOURS = {"healthy": "#1a7f37", "degraded": "#9a6700", "unhealthy": "#cf222e", "unknown": "#57606a"}
DASHES = {"degraded": "6 3", "unhealthy": "2 3"}


@dataclass
class Chart:
    title: str
    points: list[tuple[datetime, float | None]]
    unit: str | None = None
    baseline: float | None = None
    band: tuple[float, float] | None = None
    thresholds: list[tuple[str, float]] = field(default_factory=list)
    markers: list[tuple[datetime, str]] = field(default_factory=list)  # (when, verdict)
    rules: list[tuple[datetime, str]] = field(default_factory=list)  # (when, "deploy …" / "rollback")
    css_id: str = "chart"
    total: int | None = None  # how many values the points stand for, when the caller downsampled them


def downsample(points: list[tuple[datetime, float]], buckets: int = BUCKETS) -> list[tuple[datetime, float]]:
    """At most ``2 * buckets`` points: each slice's lowest and highest, in time order."""
    if len(points) <= 2 * buckets:
        return list(points)
    out = []
    size = len(points) / buckets
    for i in range(buckets):
        chunk = points[int(i * size):int((i + 1) * size)]
        lo, hi = min(chunk, key=lambda p: p[1]), max(chunk, key=lambda p: p[1])
        out.extend(sorted({lo, hi}, key=lambda p: p[0]))
    return out


def fmt(value: float) -> str:
    return f"{value:.4g}"


class _Scale:
    def __init__(self, chart: Chart, drawn: list[tuple[datetime, float]]):
        # Every point's time, with a value or not, so an empty week still has its place on the axis.
        times = [t for t, _ in chart.points] + [t for t, _ in chart.markers] + [t for t, _ in chart.rules]
        values = [v for _, v in drawn] + [v for _, v in chart.thresholds]
        values += [chart.baseline] if chart.baseline is not None else []
        values += list(chart.band or ())
        self.t0, self.t1 = (min(times).timestamp(), max(times).timestamp()) if times else (0.0, 1.0)
        if self.t1 == self.t0:
            self.t0, self.t1 = self.t0 - 1, self.t1 + 1
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        pad = (hi - lo) * 0.08 or abs(hi) * 0.1 or 1.0
        self.v0, self.v1 = (max(lo - pad, 0.0) if lo >= 0 else lo - pad), hi + pad
        self.w, self.h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(self, t: datetime) -> float:
        return LEFT + (t.timestamp() - self.t0) / (self.t1 - self.t0) * self.w

    def y(self, v: float) -> float:
        return TOP + (1 - (v - self.v0) / (self.v1 - self.v0)) * self.h


def _shape(kind: str, x: float, y: float, colour: str) -> str:
    if kind == "diamond":
        return (f'<path d="M{x:.1f} {y - 6:.1f}L{x + 6:.1f} {y:.1f}L{x:.1f} {y + 6:.1f}L{x - 6:.1f} {y:.1f}Z" '
                f'fill="{colour}"/>')
    if kind == "triangle":
        return f'<path d="M{x:.1f} {y - 6:.1f}L{x + 6:.1f} {y + 5:.1f}L{x - 6:.1f} {y + 5:.1f}Z" fill="{colour}"/>'
    if kind == "square":
        return f'<rect x="{x - 5:.1f}" y="{y - 5:.1f}" width="10" height="10" fill="{colour}"/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="none" stroke="{colour}" stroke-width="2"/>'


def _time_label(t: float, span_seconds: float) -> str:
    moment = datetime.fromtimestamp(t, timezone.utc)
    if span_seconds < 120:
        return moment.strftime("%H:%M:%S") + f".{moment.microsecond // 1000:03d}"
    if span_seconds < 2 * 3600:
        return moment.strftime("%H:%M:%S")
    return moment.strftime("%m-%d %H:%M" if span_seconds < 3 * 86400 else "%Y-%m-%d")


def _axes(s: _Scale) -> list[str]:
    out = ['<g class="axes" stroke="#8c959f" font-size="11" fill="#24292f">',
           f'<line x1="{LEFT}" y1="{TOP + s.h}" x2="{LEFT + s.w}" y2="{TOP + s.h}"/>',
           f'<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{TOP + s.h}"/>']
    for i in range(5):
        v = s.v0 + (s.v1 - s.v0) * i / 4
        y = s.y(v)
        out.append(f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" stroke="none">{fmt(v)}</text>')
        t = s.t0 + (s.t1 - s.t0) * i / 4
        x = LEFT + s.w * i / 4
        label = _time_label(t, s.t1 - s.t0)
        out.append(f'<text x="{x:.1f}" y="{TOP + s.h + 16}" text-anchor="middle" stroke="none">{label}</text>')
    out.append("</g>")
    return out


def _guides(chart: Chart, s: _Scale) -> list[str]:
    out = []
    if chart.band:
        lo, hi = chart.band
        y_hi, y_lo = s.y(hi), s.y(lo)
        out.append(f'<rect class="band" x="{LEFT}" y="{y_hi:.1f}" width="{s.w}" height="{max(y_lo - y_hi, 1):.1f}" '
                   f'fill="#54aeff" fill-opacity="0.18" data-low="{fmt(lo)}" data-high="{fmt(hi)}"/>')
        out.append(f'<text x="{LEFT + s.w + 4}" y="{y_hi + 10:.1f}" font-size="11">baseline band '
                   f'{fmt(lo)}–{fmt(hi)}</text>')
    if chart.baseline is not None:
        y = s.y(chart.baseline)
        out.append(f'<line class="baseline" x1="{LEFT}" y1="{y:.1f}" x2="{LEFT + s.w}" y2="{y:.1f}" stroke="#0969da" '
                   f'stroke-dasharray="1 0" data-value="{fmt(chart.baseline)}"/>')
        out.append(f'<text x="{LEFT + s.w + 4}" y="{y + 4:.1f}" font-size="11">baseline {fmt(chart.baseline)}</text>')
    for name, value in chart.thresholds:
        y = s.y(value)
        colour = COLOURS.get(name, "#57606a")
        out.append(f'<line class="threshold" data-name="{escape(name)}" data-value="{fmt(value)}" x1="{LEFT}" '
                   f'y1="{y:.1f}" x2="{LEFT + s.w}" y2="{y:.1f}" stroke="{colour}" '
                   f'stroke-dasharray="{DASHES.get(name, "4 4")}"/>')
        out.append(f'<text x="{LEFT + s.w + 4}" y="{y + 4:.1f}" font-size="11" fill="{colour}">'
                   f'{escape(name)} {fmt(value)}</text>')
    for when, label in chart.rules:
        x = s.x(when)
        rollback = label == "rollback"
        out.append(f'<g class="{"rollback" if rollback else "deploy"}" data-at="{iso(when)}">'
                   f'<line x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{TOP + s.h}" stroke="#57606a" '
                   f'stroke-dasharray="{"3 2" if rollback else "1 3"}"/>'
                   f'<text x="{x:.1f}" y="{TOP + s.h + 30}" text-anchor="middle" font-size="10">'
                   f'{"✕ " if rollback else "▾ "}{escape(label)}</text></g>')
    return out


def _series(drawn: list[tuple[datetime, float]], s: _Scale) -> list[str]:
    if not drawn:
        return [f'<text x="{LEFT + s.w / 2:.0f}" y="{TOP + s.h / 2:.0f}" text-anchor="middle">no values yet</text>']
    line = " ".join(f"{s.x(t):.1f},{s.y(v):.1f}" for t, v in drawn)
    out = [f'<polyline class="series" points="{line}" fill="none" stroke="#0550ae" stroke-width="1.5"/>',
           '<g class="points" fill="#0550ae">']
    out += [f'<circle class="pt" cx="{s.x(t):.1f}" cy="{s.y(v):.1f}" r="2" data-at="{iso(t)}" data-value="{v:.6g}"/>'
            for t, v in drawn]
    out.append("</g>")
    return out


def _markers(chart: Chart, s: _Scale) -> list[str]:
    out, last_x, row = [], None, 0
    for when, verdict in chart.markers:
        x, colour = s.x(when), COLOURS.get(verdict, COLOURS["unknown"])
        row = (row + 1) % 3 if last_x is not None and x - last_x < 70 else 0  # close marks step down a row
        y, last_x = TOP + 8 + 14 * row, x
        out.append(f'<g class="verdict" data-verdict="{escape(verdict)}" data-at="{iso(when)}">'
                   f'{_shape(SHAPES.get(verdict, "square"), x, y, colour)}'
                   f'<text x="{x + 8:.1f}" y="{y + 4}" font-size="10" fill="{colour}">{escape(verdict)}</text></g>')
    return out


def render(chart: Chart) -> Markup:
    """The chart as an inline ``<svg>`` element (also served alone as image/svg+xml)."""
    points = [(t, v) for t, v in chart.points if v is not None]
    drawn = downsample(points)
    total = chart.total if chart.total is not None else len(points)
    s = _Scale(chart, drawn)
    unit = f" ({chart.unit})" if chart.unit else ""
    summary = (f"{total} values{unit}" + (f", {len(drawn)} drawn" if len(drawn) < total else "")
               + (f", latest {fmt(points[-1][1])}" if points else "")
               + (f", baseline {fmt(chart.baseline)}" if chart.baseline is not None else "")
               + "".join(f", {n} threshold {fmt(v)}" for n, v in chart.thresholds))
    cid = escape(chart.css_id)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" id="{cid}" viewBox="0 0 {WIDTH} {HEIGHT}" '
             f'width="{WIDTH}" height="{HEIGHT}" role="img" aria-labelledby="{cid}-t {cid}-d" '
             f'data-count="{total}" data-drawn="{len(drawn)}" font-family="sans-serif">',
             f'<title id="{cid}-t">{escape(chart.title)}</title><desc id="{cid}-d">{escape(summary)}</desc>',
             *_axes(s), *_guides(chart, s), *_series(drawn, s), *_markers(chart, s), "</svg>"]
    return Markup("".join(parts))
