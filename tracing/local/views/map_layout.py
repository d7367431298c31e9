"""The service map's layout: where each box, edge and edge label goes.

Layered, left to right: longest path from the sources, then a few
barycentre sweeps to reduce crossings (see :mod:`tracing.local.views.service_map` for
why no library). Every edge ends in a straight run into its target, and its
label sits just above that run, in a column of the gap that no curve enters: a
label crosses no edge and no box. A node with several incoming edges gets one
port per edge on its left side, spaced by their labels' heights (its box grows
to hold them). Nothing is scaled: text is drawn at the page's size (12-14 px)
and a wide map scrolls. Drawn by :mod:`tracing.local.views.map_svg`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from tracing.local.collector.service_graph import _HOPS, MapEdge, ServiceMap, _Stats
from tracing.local.views.service_map import _ms, _pct

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
