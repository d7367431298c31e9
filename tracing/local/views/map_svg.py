"""Drawing the service map: inline SVG, legend and their style.

The positions come from :mod:`tracing.local.views.map_layout`; the page around
the map is :mod:`tracing.local.views.map_page`.

**Colours.** One rule for nodes and edges: fault (5xx) if any call faulted,
else throttle (429), else error (4xx), else ok. A node is coloured by the
requests it received (for a service or a function, its own segments); a queue,
topic, stream, event bus or state machine has no segments of its own, so it is
coloured by the calls into it *and* by the processing of what it delivered (its
outgoing edges): the queue of a poison message is as red as its edge to the
consumer. The legend says so.

Every name from trace data is escaped.
"""

from __future__ import annotations

from tracing.local.collector.service_graph import ServiceMap, _Stats
from tracing.local.views._page import _esc
from tracing.local.views.map_layout import (
    _BOX_W,
    _EDGE_CHAR,
    _LABEL_LINE,
    _LABEL_PAD,
    _LINE,
    _delivered,
    _geometry,
)
from tracing.local.views.service_map import _ms, _name, _pct

__all__ = ["MAP_STYLE", "map_legend", "map_svg"]

# Text widths (px per character), measured in Chromium and rounded up.
_NAME_CHAR = 8.4  # 14 px bold
_KIND_CHAR = 7.9  # 12 px upper case
_ROOM = _BOX_W - 24  # a line's room in a box


def _health(*stats: _Stats | None) -> str:
    """The colour class: the worst outcome among ``stats``."""
    present = [s for s in stats if s is not None]
    for which, word in (("faults", "fault"), ("throttles", "throttle"), ("errors", "error")):
        if any(getattr(s, which) for s in present):
            return word
    return "ok"


def _fit(text: str, per_char: float) -> str:
    """``text`` cut to what fits a box's line (the full text is in the title)."""
    room = int(_ROOM / per_char)
    return text if len(text) <= room else text[: room - 1] + "…"


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'s' if count != 1 else ''}"


def _figure(stats: _Stats) -> str:
    if not stats.count:
        return "source of requests"
    figure = _plural(stats.count, "request")
    if stats.avg_ms is not None:
        figure += f" · avg {_ms(stats.avg_ms)} ms"
    return figure


def _delivery_line(stats: _Stats) -> str:
    line = f"{stats.count} delivered"
    for which, word in (("faults", "fault"), ("throttles", "throttle"), ("errors", "error")):
        if getattr(stats, which):
            line += f" · {_pct(stats.rate(which))} {word}"
    return line


def map_svg(service_map: ServiceMap, interactive: bool = True) -> str:
    """The map as an inline ``<svg>`` (also drawn above ``show --html``'s timeline)."""
    if not service_map.nodes:
        return '<p class="map-empty">No calls to draw.</p>'
    geometry = _geometry(service_map)
    index = {key: i for i, key in enumerate(service_map.nodes)}
    numbers = {id(edge): n for n, edge in enumerate(service_map.edges.values())}
    parts = [
        f'<svg class="service-map" role="img" aria-label="Service map" '
        f'viewBox="0 0 {geometry.width:.0f} {geometry.height:.0f}" '
        f'width="{geometry.width:.0f}" height="{geometry.height:.0f}">',
    ]
    for item in geometry.edges:
        edge = item.edge
        x, y, w, h = item.label
        title = (
            f"{_name(edge.source, service_map)} -> {_name(edge.target, service_map)}: "
            + " · ".join(item.lines)
        )
        spans = "".join(
            f'<tspan x="{x + w / 2:.1f}" y="{y + _LABEL_PAD + 11 + i * _LABEL_LINE:.1f}">'
            f"{_esc(line)}</tspan>"
            for i, line in enumerate(item.lines)
        )
        parts.append(
            f'<g class="edge {_health(edge.stats)}" data-edge="{numbers[id(edge)]}">'
            f"<title>{_esc(title)}</title>"
            f'<path class="line" d="{item.path}"/><path class="head" d="{item.head}"/>'
            f'<rect class="label-bg" x="{x:.1f}" y="{y:.1f}" width="{w:.1f}" height="{h:.1f}"'
            f' rx="3"/><text class="label" text-anchor="middle">{spans}</text></g>'
        )
    for key, node in service_map.nodes.items():
        box = geometry.boxes[key]
        stats = node.stats
        delivered = _delivered(service_map, key)
        cls = _health(stats, delivered)
        focus = ' tabindex="0"' if interactive else ""
        label = node.label
        # A type too long for its box ("Step Functions state machine") is narrowed.
        fit = (
            f' textLength="{_ROOM}" lengthAdjust="spacingAndGlyphs"'
            if len(label) * _KIND_CHAR > _ROOM
            else ""
        )
        lines = [_figure(stats)]
        if delivered is not None:
            lines.append(_delivery_line(delivered))
        title = f"{_name(key, service_map)}: " + " · ".join(lines)
        x, y = box.x, box.y
        extra = (
            f'<text class="figure delivered {_health(delivered)}" x="{x + 12:.1f}" '
            f'y="{y + 56 + _LINE:.1f}">{_esc(lines[1])}</text>'
            if delivered is not None
            else ""
        )
        parts.append(
            f'<g class="node {_esc(node.type)} {cls}" data-node="{index[key]}"{focus}>'
            f"<title>{_esc(title)}</title>"
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{_BOX_W}" height="{box.height:.1f}" rx="8"/>'
            f'<text class="kind" x="{x + 12:.1f}" y="{y + 18:.1f}"{fit}>{_esc(label)}</text>'
            f'<text class="name" x="{x + 12:.1f}" y="{y + 37:.1f}">'
            f"{_esc(_fit(node.name, _NAME_CHAR))}</text>"
            f'<text class="figure" x="{x + 12:.1f}" y="{y + 56:.1f}">'
            f"{_esc(_fit(lines[0], _EDGE_CHAR))}</text>{extra}</g>"
        )
    parts.append("</svg>")
    return "".join(parts)


def map_legend() -> str:
    """What the map's colours and figures mean (HTML, no trace data)."""
    swatches = "".join(
        f'<span><i class="msw {cls}"></i>{text}</span>'
        for cls, text in (
            ("ok", "OK"),
            ("error", "Error (4xx)"),
            ("fault", "Fault (5xx)"),
            ("throttle", "Throttle (429)"),
        )
    )
    return (
        '<div class="map-legend" role="note" aria-label="Legend of the service map">'
        f"{swatches}"
        "<span><b>Node</b>: requests it received · their average time</span>"
        "<span><b>Edge</b>: calls · average and p95 time as the caller saw them · "
        "failure rates</span>"
        "<span>A queue, topic, stream, event bus or state machine has no segments of its "
        "own: it is coloured by the calls into it and by the processing of what it "
        "delivered</span></div>"
    )


MAP_STYLE = """
.service-map { font: 13px system-ui, sans-serif; display: block; flex: none; }
.service-map .node rect { fill: #fff; stroke: #1d8102; stroke-width: 2; }
.service-map .node.error rect { stroke: #eb5f07; }
.service-map .node.fault rect { stroke: #d13212; }
.service-map .node.throttle rect { stroke: #8c4fff; }
.service-map .node.client rect { fill: #f2f3f3; stroke: #687078; }
.service-map .node { cursor: pointer; }
.service-map .node:focus { outline: none; }
.service-map .node:focus rect, .service-map .node.selected rect { stroke-width: 4; }
.service-map .kind { fill: #545b64; font-size: 12px; text-transform: uppercase; }
.service-map .name { fill: #16191f; font-weight: 600; font-size: 14px; }
.service-map .figure { fill: #545b64; font-size: 12px; }
.service-map .figure.fault { fill: #d13212; font-weight: 600; }
.service-map .figure.error { fill: #b84a00; }
.service-map .figure.throttle { fill: #8c4fff; }
.service-map .edge path { fill: none; stroke: #687078; stroke-width: 1.6; }
.service-map .edge path.head { fill: #687078; stroke: none; }
.service-map .edge.fault path.head { fill: #d13212; }
.service-map .edge.error path.head { fill: #eb5f07; }
.service-map .edge.throttle path.head { fill: #8c4fff; }
.service-map .edge.error path { stroke: #eb5f07; }
.service-map .edge.fault path { stroke: #d13212; stroke-width: 2.4; }
.service-map .edge.throttle path { stroke: #8c4fff; }
.service-map .edge .label-bg { fill: #fff; fill-opacity: .92; stroke: none; }
.service-map .edge text { fill: #16191f; font-size: 12px; }
.service-map .edge.fault text { fill: #d13212; font-weight: 600; }
.map-legend { display: flex; flex-wrap: wrap; gap: 4px 16px; margin: 6px 4px 2px;
  font: 12px system-ui, sans-serif; color: #545b64; }
.map-legend b { color: #16191f; }
.msw { display: inline-block; width: 18px; height: 10px; border-radius: 2px;
  border: 2px solid; vertical-align: -1px; margin-right: 5px; }
.msw.ok { border-color: #1d8102; } .msw.error { border-color: #eb5f07; }
.msw.fault { border-color: #d13212; } .msw.throttle { border-color: #8c4fff; }
"""
