"""The server-drawn SVG charts (bot/web/svg.py): size, downsampling, what is readable without colour."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from datetime import datetime, timedelta, timezone

from chainpipe.bot.web.svg import BUCKETS, Chart, downsample, render

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)
NS = "{http://www.w3.org/2000/svg}"


def series(n: int) -> list[tuple[datetime, float]]:
    return [(T0 + timedelta(seconds=15 * i), 200 + 50 * math.sin(i / 40) + (900 if i == 7777 else 0))
            for i in range(n)]


def test_a_chart_of_ten_thousand_points_is_under_200_kb_and_keeps_the_spike():
    points = series(10_000)
    svg = str(render(Chart("latency_ms", points, unit="ms", baseline=210, band=(190, 230),
                           thresholds=[("degraded", 500), ("unhealthy", 1000)])))
    assert len(svg.encode()) < 200 * 1024
    root = ET.fromstring(svg)  # well-formed XML
    drawn = [float(c.get("data-value")) for c in root.iter(f"{NS}circle") if c.get("class") == "pt"]
    assert len(drawn) <= 2 * BUCKETS and max(drawn) == float(f"{max(v for _, v in points):.6g}")
    assert root.get("data-count") == "10000" and int(root.get("data-drawn")) == len(drawn)


def test_downsampling_keeps_each_slice_lowest_and_highest_in_time_order():
    points = series(5_000)
    out = downsample(points, buckets=100)
    assert len(out) <= 200 and [t for t, _ in out] == sorted(t for t, _ in out)
    assert min(v for _, v in out) == min(v for _, v in points)
    assert downsample(points[:150], buckets=100) == points[:150]  # short series are drawn whole


def test_thresholds_verdicts_and_rollbacks_are_told_apart_by_shape_and_label_not_colour():
    svg = str(render(Chart("m", series(20), thresholds=[("degraded", 500), ("unhealthy", 1000)],
                           markers=[(T0, "healthy"), (T0 + timedelta(seconds=60), "degraded"),
                                    (T0 + timedelta(seconds=120), "unhealthy")],
                           rules=[(T0 + timedelta(seconds=90), "rollback")])))
    dashes = re.findall(r'class="threshold"[^>]*stroke-dasharray="([^"]+)"', svg)
    assert len(set(dashes)) == 2  # two different dash patterns
    assert ">degraded 500</text>" in svg and ">unhealthy 1000</text>" in svg
    marks = re.findall(r'<g class="verdict" data-verdict="(\w+)"[^>]*>(<\w+)', svg)
    assert marks == [("healthy", "<circle"), ("degraded", "<path"), ("unhealthy", "<path")]
    assert "✕ rollback" in svg and "<desc" in svg and 'role="img"' in svg


def test_text_in_a_chart_is_escaped():
    svg = str(render(Chart("<script>alert(1)</script>", series(3), unit="<b>", css_id='x" onload="alert(1)')))
    assert "<script>" not in svg and "<b>" not in svg and 'onload="' not in svg
    ET.fromstring(svg)


def test_an_empty_series_says_so():
    assert "no values yet" in str(render(Chart("m", [])))
