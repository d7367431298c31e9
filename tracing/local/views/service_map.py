"""The service map, drawn: a terminal summary and a self-contained HTML page.

The map itself (nodes, edges, figures) is built by
:mod:`tracing.local.collector.service_graph`.

**Layout.** A layered layout of our own (longest path from the sources, then a
few barycentre sweeps to reduce crossings), computed in Python and drawn as
inline SVG. The usual libraries do not fit a self-contained page: dagre is no
longer maintained, and ELK's JavaScript bundle (about 1.5 MB) would have to be
inlined into every page. Service maps are small (tens of nodes), where a
layered layout is what both of them would draw anyway. The page fetches
nothing (its Content-Security-Policy forbids every load); every name from trace
data is escaped, and click data reaches the script as an escaped JSON block set
with ``textContent`` only.
"""

from __future__ import annotations

from tracing.local.collector.service_graph import _TYPE_LABELS, MapEdge, ServiceMap

__all__ = ["map_svg", "render_map_html", "render_map_text"]


# -- terminal ------------------------------------------------------------------------


def _name(key: tuple[str, str], service_map: ServiceMap | None = None) -> str:
    kind, name = key
    if kind == "client":
        return "client"
    node = service_map.nodes.get(key) if service_map is not None else None
    return f"{name} ({node.label if node is not None else _TYPE_LABELS.get(kind, kind)})"


def _pct(rate: float) -> str:
    return f"{rate * 100:.0f}%" if rate else "-"


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def render_map_text(service_map: ServiceMap) -> str:
    """A terminal summary: the nodes, then one line per edge with its figures."""
    lines = [
        f"Service map: {len(service_map.nodes)} nodes, {len(service_map.edges)} edges, "
        f"from {service_map.traces} traces"
    ]
    if not service_map.edges:
        lines.append("(no calls in these traces)")
        return "\n".join(lines)
    width = max(
        len(f"{_name(e.source, service_map)} -> {_name(e.target, service_map)}")
        for e in service_map.edges.values()
    )
    width = min(max(width, 10), 90)
    lines.append(
        f"{'edge':<{width}}  {'calls':>6}  {'avg ms':>8}  {'p95 ms':>8}  "
        f"{'error':>6}  {'fault':>6}  {'throttle':>8}"
    )
    for edge in _ordered_edges(service_map):
        title = f"{_name(edge.source, service_map)} -> {_name(edge.target, service_map)}"
        if len(title) > width:
            title = title[: width - 1] + "…"
        stats = edge.stats
        lines.append(
            f"{title:<{width}}  {stats.count:>6}  {_ms(stats.avg_ms):>8}  {_ms(stats.p95_ms):>8}  "
            f"{_pct(stats.rate('errors')):>6}  {_pct(stats.rate('faults')):>6}  "
            f"{_pct(stats.rate('throttles')):>8}"
        )
    return "\n".join(_printable(line) for line in lines)


def _printable(text: str) -> str:
    # Names come from trace data: no terminal control sequences.
    return "".join(c if c.isprintable() else "?" for c in text)


def _ordered_edges(service_map: ServiceMap) -> list[MapEdge]:
    from tracing.local.views.map_layout import _layers

    layers = _layers(service_map)
    return sorted(
        service_map.edges.values(),
        key=lambda e: (layers.get(e.source, 0), layers.get(e.target, 0), e.target[1]),
    )


# -- HTML (drawn by map_svg) -----------------------------------------------------------


def map_svg(service_map: ServiceMap, interactive: bool = True) -> str:
    """The map as an inline ``<svg>`` (see :func:`tracing.local.views.map_svg.map_svg`)."""
    from tracing.local.views.map_svg import map_svg as draw

    return draw(service_map, interactive)


def render_map_html(service_map: ServiceMap, title: str = "Service map", facts: str = "") -> str:
    """The map as one self-contained page (see :mod:`tracing.local.views.map_svg`)."""
    from tracing.local.views.map_page import render_map_html as render

    return render(service_map, title, facts)
