"""The console's timeline picture: CAs' validity periods and the node certificates that depend on each.

A pure function from rows to SVG text, drawn on the server (no script in the browser). Every bar
is placed on one time axis, so a rotation's overlap (two CA bars side by side in time) and what
still blocks a retirement (node bars under an old CA, ending after today) are seen, not read.
Every piece of text is escaped; colours are presentation attributes (the console's CSP allows no
inline style). Bounded: at most :data:`MAX_LANES` CAs and :data:`MAX_NODES` node bars per CA.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import escape

__all__ = ["MAX_LANES", "MAX_NODES", "Bar", "Lane", "timeline_svg"]

MAX_LANES = 12
MAX_NODES = 8
WIDTH = 960
_LEFT = 8
_RIGHT = 8
_AXIS = 40  # the axis and its labels, above the rows
_ROW = 38  # a CA's row: its label, then its bar
_NODE_ROW = 24
_COLOURS = {
    "active": "#1a7f37",
    "trusted": "#0969da",
    "retired": "#6e7781",
    "node": "#8250df",
    "revoked": "#cf222e",
}
_TEXT = "#1f2328"


@dataclass(frozen=True, slots=True)
class Bar:
    """One period: ``kind`` picks the colour (a CA state, ``node`` or ``revoked``)."""

    label: str
    start: dt.datetime
    end: dt.datetime
    kind: str


@dataclass(frozen=True, slots=True)
class Lane:
    """A CA and the node certificates it signed that still matter (unexpired, not replaced)."""

    ca: Bar
    nodes: Sequence[Bar] = field(default_factory=tuple)
    more: int = 0  # dependent node certificates not drawn


def _ticks(start: dt.datetime, end: dt.datetime) -> list[tuple[dt.datetime, str]]:
    """Year ticks for long spans (every N years, at most ~8), month ticks for short ones."""
    years = (end - start).days / 365.25
    ticks: list[tuple[dt.datetime, str]] = []
    if years > 2:
        step = max(1, round(years / 8))
        year = start.year + 1
        while (moment := dt.datetime(year, 1, 1, tzinfo=dt.UTC)) < end:
            ticks.append((moment, str(year)))
            year += step
    else:
        months = max(1, round(years * 12 / 8))
        year, month = start.year, start.month
        while True:
            month += months
            year, month = year + (month - 1) // 12, (month - 1) % 12 + 1
            moment = dt.datetime(year, month, 1, tzinfo=dt.UTC)
            if moment >= end:
                break
            ticks.append((moment, moment.strftime("%Y-%m")))
    return ticks[:24]


def _text(
    x: float, y: float, content: str, *, size: int = 13, anchor: str = "start", weight: str = ""
) -> str:
    bold = f' font-weight="{weight}"' if weight else ""
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" font-size="{size}" fill="{_TEXT}" text-anchor="{anchor}"{bold}>'
        f"{escape(content)}</text>"
    )


def timeline_svg(lanes: Sequence[Lane], now: dt.datetime, *, title: str) -> str:
    """An SVG element (no XML declaration: it goes inline in the page, or alone with one)."""
    lanes = list(lanes)[:MAX_LANES]
    bars = [b for lane in lanes for b in (lane.ca, *list(lane.nodes)[:MAX_NODES])]
    start = min([b.start for b in bars] + [now])
    end = max([b.end for b in bars] + [now])
    pad = max((end - start) * 0.03, dt.timedelta(days=1))
    start, end = start - pad, end + pad
    span = (end - start).total_seconds()
    usable = WIDTH - _LEFT - _RIGHT

    def x_of(moment: dt.datetime) -> float:
        return _LEFT + usable * (moment - start).total_seconds() / span

    rows = sum(1 + min(len(lane.nodes), MAX_NODES) + (1 if lane.more else 0) for lane in lanes)
    height = _AXIS + _ROW * len(lanes) + _NODE_ROW * (rows - len(lanes)) + 34
    out: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" width="100%" '
        f'role="img" aria-labelledby="timeline-title timeline-desc" class="timeline">',
        f'<title id="timeline-title">{escape(title)}</title>',
        '<desc id="timeline-desc">'
        + escape(
            f"{len(lanes)} certificate authorities on a time axis from {start:%Y-%m-%d} to {end:%Y-%m-%d}, "
            f"with the node certificates that depend on each; today is {now:%Y-%m-%d}. "
            "The table below the picture lists the same periods."
        )
        + "</desc>",
        f'<rect x="0" y="0" width="{WIDTH}" height="{height}" fill="#ffffff"/>',
    ]
    for moment, label in _ticks(start, end):
        x = x_of(moment)
        out.append(f'<line x1="{x:.1f}" y1="22" x2="{x:.1f}" y2="{height - 30}" stroke="#d0d7de"/>')
        out.append(_text(x, 16, label, size=12, anchor="middle"))
    y = float(_AXIS)
    for lane in lanes:
        ca = lane.ca
        out.append(_text(_LEFT, y + 12, ca.label, weight="600"))
        out.append(_bar(x_of(ca.start), x_of(ca.end), y + 17, 14, ca))
        y += _ROW
        for node in list(lane.nodes)[:MAX_NODES]:
            x0, x1 = x_of(node.start), x_of(node.end)
            out.append(_bar(x0, x1, y + 4, 8, node))
            label_x, anchor = (x1 + 4, "start") if x1 < WIDTH * 0.6 else (x0 - 4, "end")
            out.append(_text(label_x, y + 12, node.label, size=12, anchor=anchor))
            y += _NODE_ROW
        if lane.more:
            out.append(_text(_LEFT + 12, y + 12, f"and {lane.more} more node certificate(s)", size=12))
            y += _NODE_ROW
    x_now = x_of(now)
    out.append(
        f'<line x1="{x_now:.1f}" y1="22" x2="{x_now:.1f}" y2="{height - 28}" stroke="{_TEXT}" '
        'stroke-width="2" stroke-dasharray="4 3"/>'
    )
    # The label stays inside the picture when today is near either edge.
    anchor = "start" if x_now < 90 else "end" if x_now > WIDTH - 90 else "middle"
    out.append(_text(x_now, height - 12, f"today {now:%Y-%m-%d}", size=12, anchor=anchor, weight="600"))
    out.append("</svg>")
    return "".join(out)


def _bar(x0: float, x1: float, y: float, height: int, bar: Bar) -> str:
    colour = _COLOURS.get(bar.kind, _COLOURS["node"])
    width = max(x1 - x0, 2.0)
    tooltip = f"{bar.label}: {bar.start:%Y-%m-%d} to {bar.end:%Y-%m-%d} ({bar.kind})"
    return (
        f'<rect x="{x0:.1f}" y="{y:.1f}" width="{width:.1f}" height="{height}" rx="3" fill="{colour}">'
        f"<title>{escape(tooltip)}</title></rect>"
    )
