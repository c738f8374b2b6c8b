"""The console's SVG timeline (api/console/timeline.py): a pure function, checked as XML."""

from __future__ import annotations

import datetime as dt
import xml.etree.ElementTree as ET

from csscert.api.console.timeline import MAX_LANES, MAX_NODES, Bar, Lane, timeline_svg

NS = {"svg": "http://www.w3.org/2000/svg"}
NOW = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)


def _day(year: int, month: int = 1) -> dt.datetime:
    return dt.datetime(year, month, 1, tzinfo=dt.UTC)


def _rects(svg: str) -> dict[str, ET.Element]:
    """Bars by the label their tooltip starts with."""
    root = ET.fromstring(svg)
    found = {}
    for rect in root.iter("{http://www.w3.org/2000/svg}rect"):
        title = rect.find("svg:title", NS)
        if title is not None and title.text:
            found[title.text.split(":")[0]] = rect
    return found


def _span(rect: ET.Element) -> tuple[float, float]:
    x = float(rect.attrib["x"])
    return x, x + float(rect.attrib["width"])


def test_a_rotation_shows_two_overlapping_ca_bars_and_the_nodes_under_the_old_one() -> None:
    old = Lane(
        Bar("CA old", _day(2025), _day(2035), "trusted"),
        [Bar("node-1", _day(2029), _day(2031), "node")],
    )
    new = Lane(Bar("CA new", _day(2030), _day(2040), "active"))
    svg = timeline_svg([new, old], NOW, title="Timeline")
    bars = _rects(svg)
    new_start, _ = _span(bars["CA new"])
    old_start, old_end = _span(bars["CA old"])
    node_start, node_end = _span(bars["node-1"])
    assert old_start < new_start < old_end  # the overlap is visible
    assert old_start < node_start < node_end < old_end
    assert bars["CA new"].attrib["fill"] != bars["CA old"].attrib["fill"]


def test_bars_are_proportional_to_time() -> None:
    svg = timeline_svg(
        [Lane(Bar("A", _day(2030), _day(2032), "active")), Lane(Bar("B", _day(2030), _day(2031), "trusted"))],
        NOW,
        title="t",
    )
    bars = _rects(svg)
    a, b = _span(bars["A"]), _span(bars["B"])
    assert a[0] == b[0]
    assert abs((a[1] - a[0]) - 2 * (b[1] - b[0])) < 2.0  # ~730 vs ~365 days


def test_every_text_is_escaped() -> None:
    hostile = '<script>alert(1)</script>&"'
    svg = timeline_svg(
        [
            Lane(
                Bar(hostile, _day(2029), _day(2031), "active"), [Bar(hostile, _day(2029), _day(2030), "node")]
            )
        ],
        NOW,
        title=hostile,
    )
    assert "<script>" not in svg
    root = ET.fromstring(svg)  # still well-formed
    assert root.find("svg:title", NS).text == hostile  # type: ignore[union-attr]


def test_the_picture_is_bounded_in_lanes_and_node_bars() -> None:
    lanes = [
        Lane(
            Bar(f"CA {i}", _day(2020 + i), _day(2030 + i), "trusted"),
            [Bar(f"n{i}-{j}", _day(2029), _day(2031), "node") for j in range(50)],
            more=100,
        )
        for i in range(40)
    ]
    svg = timeline_svg(lanes, NOW, title="t")
    bars = _rects(svg)
    assert sum(1 for label in bars if label.startswith("CA ")) == MAX_LANES
    assert sum(1 for label in bars if label.startswith("n")) == MAX_LANES * MAX_NODES
    assert "and 100 more node certificate(s)" in svg
    assert len(svg) < 200_000


def test_it_is_accessible_and_has_no_inline_style_or_script() -> None:
    svg = timeline_svg([Lane(Bar("CA", _day(2029), _day(2031), "active"))], NOW, title="Validity")
    root = ET.fromstring(svg)
    assert root.attrib["role"] == "img"
    assert root.attrib["aria-labelledby"] == "timeline-title timeline-desc"
    assert root.find("svg:desc", NS) is not None
    assert "style" not in svg and "script" not in svg.lower()
    assert "today 2030-06-01" in svg


def test_today_is_on_the_axis_even_when_every_period_is_in_the_past() -> None:
    svg = timeline_svg([Lane(Bar("CA", _day(2001), _day(2002), "retired"))], NOW, title="t")
    root = ET.fromstring(svg)
    width = float(root.attrib["viewBox"].split()[2])
    lines = [
        line for line in root.iter("{http://www.w3.org/2000/svg}line") if line.attrib.get("stroke-dasharray")
    ]
    assert len(lines) == 1 and 0 < float(lines[0].attrib["x1"]) < width
