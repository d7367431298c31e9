"""The HTML timeline of an assembled trace (see :mod:`tracing.local.views.render`).

Escaping rules are in ``render``'s docstring: every string from trace data is
escaped, click data travels as an escaped JSON block set with ``textContent``, and
the Content-Security-Policy forbids every load.

This module assembles the page (header, time axis, the trace's own service map,
style and template); the rows and their details data are in
:mod:`tracing.local.views.timeline_rows`, the page's script in
:mod:`tracing.local.views.timeline_script`, and the pieces shared with the other
pages (:func:`page_csp`, :func:`_script_json`) in :mod:`tracing.local.views._page`,
also importable from here.
"""

from __future__ import annotations

import math

from tracing.local.collector.traces import Trace
from tracing.local.views._page import PAGE_HEAD, _esc, _script_json, page_csp
from tracing.local.views.render import _ms
from tracing.local.views.timeline_rows import (
    _linked_traces,
    _node_data,
    _offset_ms,
    _row,
    _when,
)
from tracing.local.views.timeline_script import _SCRIPT

# page_csp and _script_json (from _page) are imported from here too.
__all__ = ["_script_json", "page_csp", "render_html"]


def _nice_step(total_ms: float) -> float:
    if total_ms <= 0:
        return 1.0
    raw = total_ms / 6.0
    magnitude = 10.0 ** math.floor(math.log10(raw))
    for factor in (1.0, 2.0, 5.0, 10.0):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10.0 * magnitude


def _tick_label(ms: float, step: float, span: float) -> str:
    """A tick's label; the page's script (``label``) follows the same rule.

    Seconds for steps of a second or more; below that milliseconds, with one
    decimal when the axis covers less than 10 ms (more when the step needs it).
    """
    if step >= 1000:
        return f"{ms / 1000:.{max(0, -math.floor(math.log10(step / 1000) + 1e-9))}f} s"
    if span < 10:
        return f"{ms:.{max(1, math.ceil(-math.log10(step) - 1e-9))}f} ms"
    return f"{ms:.{max(0, math.ceil(-math.log10(step) - 1e-9))}f} ms"


def _axis(trace: Trace) -> tuple[str, float]:
    total_ms = trace.duration * 1000.0
    step = _nice_step(total_ms)
    ticks = []
    count = 0 if total_ms <= 0 else min(int(total_ms / step + 1e-9), 50)
    for index in range(count + 1):
        ms = index * step
        left = 0.0 if total_ms <= 0 else ms / total_ms * 100.0
        label = _esc(_tick_label(ms, step, total_ms))
        ticks.append(f'<span class="tick" style="left:{left:.4f}%">{label}</span>')
    grid = 100.0 if total_ms <= 0 else step / total_ms * 100.0
    return "".join(ticks), grid


def _trace_map(trace: Trace) -> str:
    """This trace's own service map, drawn above the timeline (as X-Ray's trace view)."""
    from tracing.local.collector.service_graph import build_map
    from tracing.local.views.map_svg import MAP_STYLE, map_legend, map_svg

    service_map = build_map([trace])
    svg = map_svg(service_map, interactive=False)
    legend = map_legend() if service_map.nodes else ""
    return (
        f'<section class="trace-map" aria-label="Service map of this trace">'
        f"<style>.trace-map{{padding:8px 20px;overflow-x:auto;background:#fff;"
        f"border-bottom:1px solid #d5dbdb}}{MAP_STYLE}</style>{svg}{legend}</section>"
    )


def render_html(trace: Trace, title: str | None = None) -> str:
    """The trace as one self-contained HTML page: a timeline like X-Ray's trace view.

    Rows in tree order, grouped by document (each segment or independent
    subsegment starts a group) and indented by depth; bars placed on a time axis and
    coloured by status (legend at the top); ``Init`` badged and coloured; clicking a
    row (or Enter on it) shows its annotations, metadata, ``aws``, ``http`` and
    ``cause`` in the details panel. Nothing is fetched: CSS and script are inline,
    and the page's Content-Security-Policy forbids every load.

    Args:
        trace: An assembled trace.
        title: The page title; default ``"Trace <trace id>"``.

    Returns:
        The HTML document.
    """
    rows = []
    nodes = []
    for index, (depth, node) in enumerate(trace.walk()):
        rows.append(_row(trace, index, depth, node))
        nodes.append(_node_data(trace, node))
    ticks, grid = _axis(trace)
    heading = title if title is not None else f"Trace {trace.trace_id or '(empty)'}"
    flags = "".join(
        f'<span class="badge {cls}">{label}</span>'
        for flag, cls, label in (
            (trace.fault, "b-fault", "FAULT"),
            (trace.error, "b-error", "ERROR"),
            (trace.throttle, "b-throttle", "THROTTLE"),
            (trace.in_progress, "b-open", "IN PROGRESS"),
            (trace.cold_start, "b-cold", "COLD START"),
        )
        if flag
    )
    page = _PAGE.format(
        csp=page_csp(_SCRIPT),
        title=_esc(heading),
        trace_id=_esc(trace.trace_id or "(none)"),
        started=_esc(_when(trace.start)) if trace.nodes else "-",
        duration=_ms(trace.duration),
        entities=trace.nodes,
        documents=trace.documents,
        flags=flags,
        grid=f"{grid:.4f}",
        ticks=ticks,
        rows="".join(rows) or '<p class="empty">No usable documents in this trace.</p>',
        data=_script_json(
            {
                "trace_id": trace.trace_id,
                "total": _offset_ms(trace, trace.start + max(trace.duration, 0.0)),
                "links": _linked_traces(trace),
                "nodes": nodes,
            }
        ),
        script=_SCRIPT,
        style=_STYLE,
        service_map=_trace_map(trace),
    )
    # NOTE: a lone surrogate (valid in a Python str from "\ud800" in JSON) cannot be
    # written as UTF-8; the JSON block is ASCII, so this only touches markup text.
    return page.encode("utf-8", "replace").decode("utf-8")


_STYLE = """
:root{--ok:#1d8102;--error:#eb5f07;--fault:#d13212;--throttle:#8c4fff;--init:#0073bb;
--line:#eaeded;--muted:#687078;--name:340px}
*{box-sizing:border-box}
body{margin:0;font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",
Arial,sans-serif;color:#16191f;background:#f2f3f3}
header{background:#232f3e;color:#fff;padding:12px 20px}
header h1{font-size:17px;margin:0 0 4px;font-weight:600;word-break:break-all}
.facts{display:flex;flex-wrap:wrap;gap:4px 18px;color:#d5dbdb}
.facts b{color:#fff;font-weight:600}
.legend{display:flex;flex-wrap:wrap;gap:4px 14px;margin-top:8px;color:#d5dbdb;font-size:12px}
.sw{display:inline-block;width:18px;height:10px;border-radius:2px;vertical-align:-1px;margin-right:5px}
main{display:grid;grid-template-columns:minmax(0,1fr) 360px;gap:16px;padding:16px 20px}
.timeline{background:#fff;border:1px solid #d5dbdb;border-radius:4px;overflow:hidden;
position:relative}
.zoombar{display:flex;flex-wrap:wrap;align-items:center;gap:4px 12px;padding:5px 8px;
font-size:12px;border-bottom:1px solid var(--line)}
#zoom-range{font-weight:600;font-variant-numeric:tabular-nums}
#zoom-reset{font:inherit;padding:1px 10px;border:1px solid #879596;border-radius:3px;
background:#fff;color:#16191f;cursor:pointer}
#zoom-reset:disabled{color:#aab7b8;border-color:#d5dbdb;cursor:default}
kbd{font:11px ui-monospace,monospace;border:1px solid #d5dbdb;border-radius:3px;padding:0 3px}
#axis-lane{cursor:col-resize;user-select:none}
.brush{position:absolute;top:0;bottom:0;background:rgba(0,115,187,.14);
border-left:1px solid #0073bb;border-right:1px solid #0073bb;pointer-events:none}
.bar.out{visibility:hidden}
.links{margin-top:8px;font-size:12px;color:#d5dbdb}
.links:empty{display:none}
.links ul{display:inline;margin:0;padding:0;list-style:none}
.links li{display:inline;margin-left:10px}
.links a{color:#8ecbf4}
.links .from{color:#aab7b8}
.links code{font-size:11px}
dd a{color:#0073bb}
.row,.axis{display:grid;grid-template-columns:var(--name) 84px 78px minmax(0,1fr);
align-items:center;min-height:26px;border-top:1px solid var(--line)}
.axis{border-top:0;background:#fafafa;font-size:11px;color:var(--muted);font-weight:600}
.row{cursor:pointer}
.row:hover{background:#f1faff}
.row.selected{background:#e1f0fb;outline:1px solid #0073bb;outline-offset:-1px}
.row:focus-visible{outline:2px solid #0073bb;outline-offset:-2px}
.row.doc{border-top:2px solid #aab7b8;background:#f7f9f9}
.row.doc.selected{background:#e1f0fb}
.row.doc .label{font-weight:600}
.cell{padding:3px 8px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
.name{padding-left:calc(8px + var(--d) * 16px)}
.label{white-space:pre}
.dur{text-align:right;font-variant-numeric:tabular-nums}
.status.s-ok{color:var(--ok)}.status.s-error{color:var(--error)}
.status.s-fault{color:var(--fault);font-weight:600}.status.s-throttle{color:var(--throttle)}
.code{color:var(--muted)}
.lane{position:relative;height:26px;padding:0;margin:0 12px;overflow:visible;
background-image:linear-gradient(to right,var(--line) 1px,transparent 1px);
background-size:var(--grid) 100%}
.axis .lane{background:none;height:22px}
.tick{position:absolute;top:4px;transform:translateX(-50%);white-space:nowrap}
.tick:first-child{transform:none}
.bar{position:absolute;top:7px;height:12px;min-width:2px;border-radius:2px;background:var(--ok)}
.bar.init{background:var(--init)}
.bar.error{background:var(--error)}.bar.fault{background:var(--fault)}
.bar.throttle{background:var(--throttle)}
.bar.open,.sw.open{background-image:repeating-linear-gradient(135deg,rgba(255,255,255,.55) 0 3px,
transparent 3px 7px);border-right:2px dashed #16191f}
.kind{color:var(--muted);font-size:11px;margin-left:6px;font-weight:400}
.op{color:var(--muted);font-size:11px;margin-left:6px}
.badge{display:inline-block;font-size:10px;font-weight:700;letter-spacing:.03em;padding:0 5px;
border-radius:8px;margin-left:6px;line-height:16px;color:#fff;background:#545b64}
.b-init{background:var(--init)}.b-cold{background:#0e6a9c}.b-fault{background:var(--fault)}
.b-error{background:var(--error)}.b-throttle{background:var(--throttle)}
.b-open{background:#16191f}
.orphan{color:var(--muted);font-size:11px;margin-left:6px;font-weight:400}
aside{background:#fff;border:1px solid #d5dbdb;border-radius:4px;padding:12px 14px;
align-self:start;position:sticky;top:12px;max-height:calc(100vh - 24px);overflow:auto}
aside h2{font-size:15px;margin:0 0 8px}
aside h3{font-size:12px;text-transform:uppercase;letter-spacing:.05em;color:var(--muted);
margin:14px 0 4px}
.hint,.empty{color:var(--muted)}
.empty{padding:16px}
dl.kv{display:grid;grid-template-columns:auto minmax(0,1fr);gap:2px 10px;margin:0}
dl.kv dt{color:var(--muted)}
dl.kv dd{margin:0;word-break:break-all;white-space:pre-wrap}
pre{background:#f7f9f9;border:1px solid var(--line);padding:6px 8px;margin:0;font-size:12px;
white-space:pre-wrap;word-break:break-all}
.exception .what{font-weight:600;margin:2px 0;word-break:break-all}
ol.frames{margin:2px 0 6px;padding-left:20px;font:12px ui-monospace,monospace;word-break:break-all}
.detail-cause .same,.detail-cause .cwd{color:var(--muted);margin:2px 0;word-break:break-all}
@media (max-width:1000px){main{grid-template-columns:1fr}:root{--name:240px}}
"""

_PAGE = (
    PAGE_HEAD
    + """<header>
<h1>{title}</h1>
<div class="facts"><span>trace <b>{trace_id}</b></span><span>started <b>{started}</b></span>
<span>duration <b>{duration}</b></span><span><b>{entities}</b> entities in
<b>{documents}</b> documents</span>{flags}</div>
<div class="legend"><span><i class="sw" style="background:var(--ok)"></i>OK</span>
<span><i class="sw" style="background:var(--error)"></i>Error (4xx)</span>
<span><i class="sw" style="background:var(--fault)"></i>Fault (5xx)</span>
<span><i class="sw" style="background:var(--throttle)"></i>Throttle (429)</span>
<span><i class="sw" style="background:var(--init)"></i>Init phase</span>
<span><i class="sw open" style="background-color:#545b64"></i>In progress</span>
<span>Bold rows with a line above start a document (segment or independent subsegment)</span>
</div>
<div class="links" id="links"></div>
</header>
{service_map}
<main>
<div class="timeline" role="grid" aria-label="Timeline" style="--grid:{grid}%">
<div class="zoombar" id="zoombar"></div>
<div class="axis" role="row"><div class="cell">Name</div><div class="cell">Status</div>
<div class="cell dur">Duration</div><div class="cell lane" id="axis-lane">{ticks}</div></div>
{rows}
</div>
<aside id="details" aria-live="polite">
<h2 id="details-title">Details</h2>
<div id="details-body"><p class="hint">Click a row to see its annotations, metadata,
AWS call and error cause.</p></div>
</aside>
</main>
<script type="application/json" id="trace-data">{data}</script>
<script>{script}</script>
</body>
</html>
"""
)
