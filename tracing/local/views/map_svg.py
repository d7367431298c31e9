"""Drawing the service map: layout, inline SVG, legend and page.

**Layout.** Layered, left to right: longest path from the sources, then a few
barycentre sweeps to reduce crossings (see :mod:`tracing.local.views.service_map` for
why no library). Every edge ends in a straight run into its target, and its
label sits just above that run, in a column of the gap that no curve enters: a
label crosses no edge and no box. A node with several incoming edges gets one
port per edge on its left side, spaced by their labels' heights (its box grows
to hold them). Nothing is scaled: text is drawn at the page's size (12-14 px)
and a wide map scrolls.

**Colours.** One rule for nodes and edges: fault (5xx) if any call faulted,
else throttle (429), else error (4xx), else ok. A node is coloured by the
requests it received (for a service or a function, its own segments); a queue,
topic, stream, event bus or state machine has no segments of its own, so it is
coloured by the calls into it *and* by the processing of what it delivered (its
outgoing edges): the queue of a poison message is as red as its edge to the
consumer. The legend says so.

Every name from trace data is escaped; click data reaches the script as an
escaped JSON block set with ``textContent`` only; trace ids become links only
when they are trace ids (letters, digits and ``-``).
"""

from __future__ import annotations

import html
import math
from dataclasses import dataclass, field
from typing import Any

from tracing.local.collector.service_graph import _HOPS, MapEdge, ServiceMap, _Stats, _stats
from tracing.local.views.html_view import _script_json, page_csp
from tracing.local.views.service_map import _ms, _name, _ordered_edges, _pct

__all__ = ["MAP_STYLE", "map_legend", "map_svg", "render_map_html"]

Key = tuple[str, str]

_BOX_W = 200
_BOX_H = 66  # type, name, figure
_LINE = 16  # one more line in a box (what a resource delivered)
_GAP_Y = 50
_MARGIN = 20
_CURVE = 44  # room for the curves between a layer and the next label column
_ARROW = 12  # the straight run's end, under the arrowhead
_LABEL_LINE = 15  # an edge label's line (12 px text)
_LABEL_PAD = 4
_LABEL_CHARS = 24  # characters of an edge label's line before it wraps
# Text widths (px per character), measured in Chromium and rounded up.
_EDGE_CHAR = 6.9  # 12 px
_NAME_CHAR = 8.4  # 14 px bold
_KIND_CHAR = 7.9  # 12 px upper case
_ROOM = _BOX_W - 24  # a line's room in a box


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


# -- layout --------------------------------------------------------------------------


def _rank(service_map: ServiceMap) -> tuple[dict[Key, int], dict[int, list[Key]]]:
    """Layers (longest path from the sources, cycles broken) and each layer's order."""
    keys = list(service_map.nodes)
    outgoing: dict[Key, list[Key]] = {k: [] for k in keys}
    incoming: dict[Key, list[Key]] = {k: [] for k in keys}
    for source, target in service_map.edges:
        if source != target:
            outgoing[source].append(target)
            incoming[target].append(source)
    # Break cycles: drop edges that go back to a node on the current DFS path.
    forward: dict[Key, list[Key]] = {k: [] for k in keys}
    state: dict[Key, int] = {}
    starts = sorted(keys, key=lambda k: (k[0] != "client", bool(incoming[k]), k))
    for start in starts:
        if start in state:
            continue
        state[start] = 1
        path = [(start, iter(outgoing[start]))]
        while path:
            current, children = path[-1]
            child = next(children, None)
            if child is None:
                state[current] = 2
                path.pop()
            elif state.get(child) == 1:
                continue  # a back edge
            else:
                forward[current].append(child)
                if child not in state:
                    state[child] = 1
                    path.append((child, iter(outgoing[child])))
    layer = {k: 0 for k in keys}
    for _ in range(len(keys)):
        changed = False
        for source in keys:
            for target in forward[source]:
                if layer[target] < layer[source] + 1:
                    layer[target] = layer[source] + 1
                    changed = True
        if not changed:
            break
    rows: dict[int, list[Key]] = {}
    for key in keys:
        rows.setdefault(layer[key], []).append(key)
    for members in rows.values():
        members.sort(key=lambda k: (k[0] != "client", k[1]))
    # Barycentre sweeps: order each layer by the mean position of its neighbours.
    for sweep in range(4):
        order = range(1, len(rows)) if sweep % 2 == 0 else range(len(rows) - 2, -1, -1)
        for index in order:
            members = rows.get(index, [])
            neighbour_rows = rows.get(index - 1 if sweep % 2 == 0 else index + 1, [])
            position = {key: i for i, key in enumerate(neighbour_rows)}
            links = incoming if sweep % 2 == 0 else outgoing
            placed = {key: i for i, key in enumerate(members)}
            weight: dict[Key, tuple[float, int]] = {}
            for key in members:
                seen = [position[other] for other in links[key] if other in position]
                weight[key] = (sum(seen) / len(seen) if seen else math.inf, placed[key])
            members.sort(key=weight.__getitem__)
    return layer, rows


def _layers(service_map: ServiceMap) -> dict[Key, int]:
    return _rank(service_map)[0]


def _edge_lines(stats: _Stats) -> list[str]:
    """Calls and average; then p95 and the failure rates, wrapped."""
    lines = [f"{stats.count} call{'s' if stats.count != 1 else ''}"]
    if stats.avg_ms is not None:
        lines[0] += f" · avg {_ms(stats.avg_ms)} ms"
    parts = [f"p95 {_ms(stats.p95_ms)} ms"] if stats.p95_ms is not None else []
    for which, word in (("faults", "fault"), ("errors", "error"), ("throttles", "throttle")):
        if getattr(stats, which):
            parts.append(f"{_pct(stats.rate(which))} {word}")
    line = ""
    for part in parts:
        if line and len(line) + 3 + len(part) > _LABEL_CHARS:
            lines.append(line)
            line = part
        else:
            line = f"{line} · {part}" if line else part
    if line:
        lines.append(line)
    return lines


def _merged(edges: list[MapEdge]) -> _Stats | None:
    if not edges:
        return None
    merged = _Stats()
    for edge in edges:
        merged.count += edge.stats.count
        merged.errors += edge.stats.errors
        merged.faults += edge.stats.faults
        merged.throttles += edge.stats.throttles
        merged.durations.extend(edge.stats.durations)
    return merged


def _health(*stats: _Stats | None) -> str:
    """The colour class: the worst outcome among ``stats``."""
    present = [s for s in stats if s is not None]
    for which, word in (("faults", "fault"), ("throttles", "throttle"), ("errors", "error")):
        if any(getattr(s, which) for s in present):
            return word
    return "ok"


def _delivered(service_map: ServiceMap, key: Key) -> _Stats | None:
    """What a queue, topic, stream, bus or state machine delivered (its outgoing edges)."""
    if key[0] not in _HOPS:
        return None
    return _merged([e for e in service_map.edges.values() if e.source == key and e.target != key])


@dataclass
class _Box:
    x: float = 0.0
    y: float = 0.0
    height: float = _BOX_H
    ports_in: list[float] = field(default_factory=list)  # offsets from y, per incoming edge


@dataclass
class _Drawn:
    edge: MapEdge
    path: str
    head: str
    lines: list[str]
    label: tuple[float, float, float, float]  # x, y, width, height of its background


@dataclass
class _Geometry:
    boxes: dict[Key, _Box]
    edges: list[_Drawn]
    width: float
    height: float


def _label_size(lines: list[str]) -> tuple[float, float]:
    width = max(len(line) for line in lines) * _EDGE_CHAR + 2 * _LABEL_PAD
    return width, len(lines) * _LABEL_LINE + 2 * _LABEL_PAD


def _geometry(service_map: ServiceMap) -> _Geometry:
    layer, rows = _rank(service_map)
    edges = list(service_map.edges.values())
    lines = [_edge_lines(e.stats) for e in edges]
    sizes = [_label_size(ls) for ls in lines]
    back = [layer[e.target] <= layer[e.source] for e in edges]
    # The label column before each layer: as wide as its widest label.
    column: dict[int, float] = {}
    for number, edge in enumerate(edges):
        if not back[number]:
            into = layer[edge.target]
            column[into] = max(column.get(into, 0.0), sizes[number][0])
    lefts: dict[int, float] = {}
    x = float(_MARGIN)
    for index in range(max(rows, default=0) + 1):
        if index:
            x += _BOX_W + _CURVE + column.get(index, 60.0) + _ARROW
        lefts[index] = x
    # Incoming ports, in the order of their sources (top to bottom), back edges last.
    where = {
        key: (layer[key], rows[layer[key]].index(key) / len(rows[layer[key]])) for key in layer
    }
    incoming: dict[Key, list[int]] = {key: [] for key in service_map.nodes}
    for number, edge in enumerate(edges):
        incoming[edge.target].append(number)
    boxes: dict[Key, _Box] = {}
    ports: dict[int, float] = {}
    for key, numbers in incoming.items():
        numbers.sort(key=lambda n: (back[n], where[edges[n].source][1], where[edges[n].source][0]))
        box = boxes[key] = _Box()
        base = _BOX_H + (_LINE if _delivered(service_map, key) is not None else 0)
        if len(numbers) <= 1:
            box.height = base
            for number in numbers:
                ports[number] = base / 2
            continue
        offset = 14.0
        for position, number in enumerate(numbers):
            if position:
                offset += sizes[number][1] + 8 if not back[number] else 16
            ports[number] = offset
        box.height = max(base, offset + 14)
    # Rows: each layer's boxes stacked, centred on the tallest layer.
    totals = {
        index: sum(boxes[k].height for k in members) + _GAP_Y * (len(members) - 1)
        for index, members in rows.items()
    }
    tallest = max(totals.values(), default=0.0)
    for index, members in rows.items():
        y = (tallest - totals[index]) / 2
        for key in members:
            boxes[key].x, boxes[key].y = lefts[index], y
            y += boxes[key].height + _GAP_Y
    # Outgoing ports: spread over the right side, in the order of their targets' ports.
    outgoing: dict[Key, list[int]] = {key: [] for key in service_map.nodes}
    for number, edge in enumerate(edges):
        outgoing[edge.source].append(number)
    starts: dict[int, float] = {}
    for key, numbers in outgoing.items():
        box = boxes[key]
        numbers.sort(key=lambda n: (back[n], boxes[edges[n].target].y + ports[n]))
        for position, number in enumerate(numbers):
            starts[number] = box.y + box.height * (position + 1) / (len(numbers) + 1)
    drawn: list[_Drawn] = []
    for number, edge in enumerate(edges):
        source, target = boxes[edge.source], boxes[edge.target]
        x1, y1 = source.x + _BOX_W, starts[number]
        x2, y2 = target.x, target.y + ports[number]
        width, height = sizes[number]
        if back[number]:  # a cycle: loop below both boxes, the label under the loop
            low = max(source.y + source.height, target.y + target.height) + 30
            path = (
                f"M{x1:.1f},{y1:.1f} C{x1 + 70:.1f},{low + 20:.1f} "
                f"{x2 - 70:.1f},{low + 20:.1f} {x2:.1f},{y2:.1f}"
            )
            label = ((x1 + x2) / 2 - width / 2, low + 22, width, height)
        else:
            run = x2 - _ARROW - column[layer[edge.target]] - 4
            bend = max(run - x1, 1.0) / 2
            path = (
                f"M{x1:.1f},{y1:.1f} C{x1 + bend:.1f},{y1:.1f} "
                f"{run - bend:.1f},{y2:.1f} {run:.1f},{y2:.1f} L{x2 - 2:.1f},{y2:.1f}"
            )
            label = (x2 - _ARROW - width, y2 - 3 - height, width, height)
        head = f"M{x2:.1f},{y2:.1f} L{x2 - 9:.1f},{y2 - 5:.1f} L{x2 - 9:.1f},{y2 + 5:.1f} z"
        drawn.append(_Drawn(edge, path, head, lines[number], label))
    # Everything inside the picture: shift down by what rises above the top boxes.
    top = min([0.0] + [d.label[1] for d in drawn])
    shift = _MARGIN - top
    for box in boxes.values():
        box.y += shift
    bottom = max(
        [b.y + b.height for b in boxes.values()] + [d.label[1] + shift + d.label[3] for d in drawn]
    )
    right = max([b.x + _BOX_W for b in boxes.values()], default=0.0)
    for item in drawn:
        item.path = _shifted(item.path, shift)
        item.head = _shifted(item.head, shift)
        x, y, w, h = item.label
        item.label = (x, y + shift, w, h)
    return _Geometry(boxes, drawn, right + _MARGIN, bottom + _MARGIN)


def _shifted(path: str, dy: float) -> str:
    """A path's ``x,y`` pairs moved down by ``dy``."""
    out = []
    for token in path.split(" "):
        command = token[0] if token[0].isalpha() else ""
        if "," not in token:
            out.append(token)
            continue
        x, _, y = token[len(command) :].partition(",")
        out.append(f"{command}{x},{float(y) + dy:.1f}")
    return " ".join(out)


# -- SVG -----------------------------------------------------------------------------


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

_STYLE = (
    """
body { margin: 0; font: 14px system-ui, sans-serif; color: #16191f; background: #fafafa; }
header { padding: 14px 20px; background: #232f3e; color: #fff; }
header h1 { margin: 0; font-size: 18px; }
header .facts { margin-top: 4px; color: #d5dbdb; }
.canvas { background: #fff; border: 1px solid #d5dbdb; border-radius: 8px; padding: 8px;
  overflow: auto; margin: 16px 20px 0; }
.below { display: flex; gap: 16px; padding: 16px 20px; align-items: flex-start; }
aside { width: 360px; flex: none; background: #fff; border: 1px solid #d5dbdb;
  border-radius: 8px; padding: 12px; }
aside h2 { margin: 0 0 8px; font-size: 15px; word-break: break-all; }
aside ul { padding-left: 18px; margin: 6px 0; }
aside li { font-family: ui-monospace, monospace; font-size: 12px; word-break: break-all; }
aside a { color: #0073bb; }
.hint { color: #545b64; }
table.edges { border-collapse: collapse; background: #fff; }
table.edges th, table.edges td { border: 1px solid #d5dbdb; padding: 4px 8px; text-align: right; }
table.edges td:first-child, table.edges th:first-child { text-align: left; }
"""
    + MAP_STYLE
)

_SCRIPT = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("map-data").textContent);
  var title = document.getElementById("details-title");
  var body = document.getElementById("details-body");
  function text(tag, value) {
    var node = document.createElement(tag);
    node.textContent = String(value);
    return node;
  }
  function pct(rate) { return Math.round(rate * 100) + "%"; }
  function outcome(stats) {
    return "fault " + pct(stats.fault_rate) + ", error " + pct(stats.error_rate) +
      ", throttle " + pct(stats.throttle_rate);
  }
  function select(index) {
    var item = data.nodes[index];
    document.querySelectorAll(".node.selected").forEach(function (n) {
      n.classList.remove("selected");
    });
    var box = document.querySelector('.node[data-node="' + index + '"]');
    if (box) { box.classList.add("selected"); }
    title.textContent = item.name + " (" + item.label + ")";
    body.textContent = "";
    body.appendChild(text("p", item.count + " request(s) received" +
      (item.avg_ms === null ? "" : ", avg " + item.avg_ms + " ms") + "; " + outcome(item)));
    if (item.delivered) {
      body.appendChild(text("p", item.delivered.count + " delivered to consumers; " +
        outcome(item.delivered)));
    }
    body.appendChild(text("p", item.traces.length + " trace(s):"));
    var list = document.createElement("ul");
    list.className = "traces";
    item.traces.forEach(function (id) {
      var entry = document.createElement("li");
      if (/^[0-9A-Za-z-]{1,64}$/.test(id)) {
        var link = text("a", id);
        link.href = encodeURIComponent(id) + ".html";
        entry.appendChild(link);
      } else {
        entry.textContent = id;
      }
      list.appendChild(entry);
    });
    body.appendChild(list);
    if (item.traces.length) {
      body.appendChild(text("p", "Each link opens <trace id>.html next to this page: " +
        "write it with tracing show <trace id> --html <trace id>.html"));
    }
  }
  document.querySelectorAll(".node").forEach(function (box) {
    var index = Number(box.getAttribute("data-node"));
    box.addEventListener("click", function () { select(index); });
    box.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); select(index); }
    });
  });
})();
"""

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="referrer" content="no-referrer">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<style>{style}</style>
</head>
<body>
<header><h1>{title}</h1>
<div class="facts">{facts}</div></header>
<main>
<div class="canvas">{svg}{legend}</div>
<div class="below">
{table}
<aside id="details" aria-live="polite"><h2 id="details-title">Traces</h2>
<div id="details-body"><p class="hint">Click a node to list the traces that reached it.</p>
</div></aside>
</div>
</main>
<script type="application/json" id="map-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""


def _edge_table(service_map: ServiceMap) -> str:
    rows = [
        "<tr><th>edge</th><th>calls</th><th>avg ms</th><th>p95 ms</th><th>error</th>"
        "<th>fault</th><th>throttle</th></tr>"
    ]
    for edge in _ordered_edges(service_map):
        stats = edge.stats
        rows.append(
            f'<tr class="{_health(stats)}"><td>{_esc(_name(edge.source, service_map))} → '
            f"{_esc(_name(edge.target, service_map))}</td><td>{stats.count}</td>"
            f"<td>{_ms(stats.avg_ms)}</td>"
            f"<td>{_ms(stats.p95_ms)}</td><td>{_pct(stats.rate('errors'))}</td>"
            f"<td>{_pct(stats.rate('faults'))}</td><td>{_pct(stats.rate('throttles'))}</td></tr>"
        )
    return f'<table class="edges">{"".join(rows)}</table>'


def _page_data(service_map: ServiceMap) -> dict[str, Any]:
    data = service_map.to_dict()
    for item, key in zip(data["nodes"], service_map.nodes, strict=True):
        delivered = _delivered(service_map, key)
        item["health"] = _health(service_map.nodes[key].stats, delivered)
        item["delivered"] = None if delivered is None else _stats(delivered)
    return data


def render_map_html(service_map: ServiceMap, title: str = "Service map", facts: str = "") -> str:
    """The map as one self-contained page: click a node to list its traces."""
    summary = (
        f"{len(service_map.nodes)} nodes, {len(service_map.edges)} edges, "
        f"from {service_map.traces} traces"
    )
    return _PAGE.format(
        csp=page_csp(_SCRIPT),
        title=_esc(title),
        facts=_esc(f"{summary}{' · ' + facts if facts else ''}"),
        style=_STYLE,
        svg=map_svg(service_map),
        legend=map_legend() if service_map.nodes else "",
        table=_edge_table(service_map),
        data=_script_json(_page_data(service_map)),
        script=_SCRIPT,
    )
