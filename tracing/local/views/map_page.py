"""The service map's self-contained HTML page: the map, its legend, the table
of edges and a details panel listing the traces that reached a clicked node.

Every name from trace data is escaped; click data reaches the script as an
escaped JSON block set with ``textContent`` only; trace ids become links only
when they are trace ids (letters, digits and ``-``).
"""

from __future__ import annotations

from typing import Any

from tracing.local.collector.service_graph import ServiceMap, _stats
from tracing.local.views._page import PAGE_HEAD, _esc, _script_json, page_csp
from tracing.local.views.map_layout import _delivered
from tracing.local.views.map_svg import MAP_STYLE, _health, map_legend, map_svg
from tracing.local.views.service_map import _ms, _name, _ordered_edges, _pct

__all__ = ["render_map_html"]


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
        "tracing ui serves every stored trace so, or write one with " +
        "tracing show <trace id> --html <trace id>.html"));
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

_PAGE = (
    PAGE_HEAD
    + """<header><h1>{title}</h1>
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
)


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
