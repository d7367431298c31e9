"""The HTML timeline of an assembled trace (see :mod:`tracing.local.views.render`).

Escaping rules are in ``render``'s docstring: every string from trace data is
escaped, click data travels as an escaped JSON block set with ``textContent``, and
the Content-Security-Policy forbids every load.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import html
import json
import math
import re
from typing import Any

from tracing.local.collector.traces import Node, Trace
from tracing.local.views.render import _ms, _operation, _status

__all__ = ["render_html"]

_DETAIL_KEYS = ("aws", "http", "cause", "sql", "namespace", "origin", "type", "precursor_ids")
_MAX_DEPTH_INDENT = 24  # HTML indentation levels, however deep
_MAX_NAME = 300  # characters of a name drawn in a row
_MAX_STRING = 20_000  # characters of one string in the details data
_MAX_ITEMS = 1_000  # entries of one list/dict in the details data
_MAX_NESTING = 32  # levels of one value in the details data
_MAX_LINKS = 50  # linked traces listed in the header
# Annotations naming another trace (the SQS record subsegment, the first
# invocation under provisioned concurrency); the page's script has the same list.
_LINK_KEYS = ("LinkedTraceId", "InitTraceId")
_TRACE_ID = re.compile(r"1-[0-9a-f]{8}-[0-9a-f]{24}")


def _jsonable(value: Any, depth: int = 0) -> Any:
    """A JSON-safe, bounded copy: no NaN, string keys, limited size and nesting."""
    if value is None or isinstance(value, (bool, int)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, str):
        return value if len(value) <= _MAX_STRING else value[:_MAX_STRING] + "…"
    if depth >= _MAX_NESTING:
        return "…"
    if isinstance(value, dict):
        items = list(value.items())[:_MAX_ITEMS]
        return {str(key): _jsonable(item, depth + 1) for key, item in items}
    if isinstance(value, (list, tuple)):
        return [_jsonable(item, depth + 1) for item in value[:_MAX_ITEMS]]
    return type(value).__name__


def _script_json(data: Any) -> str:
    """JSON safe inside ``<script type="application/json">`` (no ``</script>``)."""
    text = json.dumps(data, ensure_ascii=True, allow_nan=False, separators=(",", ":"))
    # NOTE: ensure_ascii already escapes U+2028/U+2029; the replacements below keep
    # "</script>" and "<!--" from closing or confusing the block. These characters
    # only occur inside JSON strings, where \uXXXX means the same character.
    return (
        text.replace("<", "\\u003c")
        .replace(">", "\\u003e")
        .replace("&", "\\u0026")
        .replace("\u2028", "\\u2028")
        .replace("\u2029", "\\u2029")
    )


def page_csp(script: str) -> str:
    """The Content-Security-Policy of our pages: no load at all, only ``script`` runs."""
    script_hash = base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()
    return (
        "default-src 'none'; style-src 'unsafe-inline'; "
        f"script-src 'sha256-{script_hash}'; img-src 'none'; base-uri 'none'; form-action 'none'"
    )


def _esc(text: str) -> str:
    return html.escape(text, quote=True)


def _when(seconds: float) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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


def _position(trace: Trace, node: Node) -> tuple[float, float]:
    total = trace.duration
    if total <= 0:
        return 0.0, 100.0 if node.in_progress else 0.0
    left = min(max((node.start - trace.start) / total * 100.0, 0.0), 100.0)
    width = min(max((node.display_end - node.start) / total * 100.0, 0.0), 100.0 - left)
    return left, width


def _http_status(node: Node) -> str:
    http = node.entity.get("http")
    response = http.get("response") if isinstance(http, dict) else None
    status = response.get("status") if isinstance(response, dict) else None
    if isinstance(status, int) and not isinstance(status, bool):
        return str(status)
    return ""


def _node_data(trace: Trace, node: Node) -> dict[str, Any]:
    entity = node.entity
    data: dict[str, Any] = {
        "name": node.name,
        "id": node.id,
        "parent_id": node.parent_id,
        "kind": node.kind,
        "document_root": node.document_root,
        "orphan": node.orphan,
        "init": node.is_init,
        "cold_start": node.cold_start,
        "status": "in progress" if node.in_progress and _status(node) == "ok" else _status(node),
        "start": _when(node.start),
        "offset": _ms(node.start - trace.start),
        "duration": _ms(node.duration),
        "annotations": node.annotations,
        "metadata": node.metadata,
        # Offsets from the trace's start, in ms: where the script draws the bar
        # when the timeline is zoomed.
        "at": _offset_ms(trace, node.start),
        "until": _offset_ms(trace, node.display_end),
    }
    for key in _DETAIL_KEYS:
        if key in entity:
            data[key] = entity[key]
    return {key: _jsonable(value) for key, value in data.items()}


def _offset_ms(trace: Trace, moment: float) -> float:
    value = (moment - trace.start) * 1000.0
    return round(value, 6) if math.isfinite(value) else 0.0


def _linked_traces(trace: Trace) -> list[dict[str, Any]]:
    """The other traces this trace's annotations name, for the header's links.

    The worker's record subsegment (``SQS message``) names the producer's trace
    with ``LinkedTraceId``, the first invocation names Init's own trace with
    ``InitTraceId``; wherever a document of this trace names another trace, the
    page links to ``<trace id>.html`` next to it (as the map's node details do),
    so one can go from either side to the other. Only a well-formed X-Ray trace
    id is listed (the script checks it again before making a link).
    """
    seen: dict[str, list[str]] = {}
    for _depth, node in trace.walk():
        for key in _LINK_KEYS:
            value = node.annotations.get(key)
            if (
                isinstance(value, str)
                and _TRACE_ID.fullmatch(value)
                and value != trace.trace_id
                and (value in seen or len(seen) < _MAX_LINKS)
            ):
                names = seen.setdefault(value, [])
                label = f"{node.name[:_MAX_NAME]} ({key})"
                if label not in names and len(names) < 5:
                    names.append(label)
    return [{"trace_id": value, "from": names} for value, names in seen.items()]


def _root_note(node: Node) -> str:
    """A quiet note on a document whose parent is not among the trace's documents."""
    parent = node.parent_id or "?"
    if node.is_init or (node.kind == "subsegment" and "Service" in node.annotations):
        # Lambda's own function segment (AWS records it; locally nobody does).
        note, why = "from Lambda", f"under Lambda's function segment {parent}, not recorded here"
    else:
        note, why = "called from outside", f"its parent {parent} is not in this trace"
    return f'<span class="orphan" title="{_esc(why)}">{note}</span>'


def _row(trace: Trace, index: int, depth: int, node: Node) -> str:
    status = _status(node)
    classes = ["row", status]
    if node.document_root:
        classes.append("doc")
    bar_classes = ["bar", status]
    if node.is_init:
        bar_classes.append("init")
    if node.in_progress:
        bar_classes.append("open")
    badges = []
    if node.document_root:
        kind = "segment" if node.kind == "segment" else "subsegment"
        badges.append(f'<span class="kind">{kind}</span>')
    if node.is_init:
        badges.append('<span class="badge b-init" title="Init phase">INIT</span>')
    if node.cold_start:
        badges.append('<span class="badge b-cold" title="ColdStart=true">COLD</span>')
    if node.in_progress:
        badges.append('<span class="badge b-open" title="No end_time yet">IN PROGRESS</span>')
    if node.orphan:
        # NOTE: common and harmless locally: Lambda's own function segment, the parent
        # of Init and of each invocation, is never among our documents.
        badges.append(_root_note(node))
    operation = _operation(node)
    if operation:
        badges.append(f'<span class="op">{_esc(operation[:_MAX_NAME])}</span>')
    left, width = _position(trace, node)
    name = node.name[:_MAX_NAME]
    status_text = {"ok": "OK", "error": "Error", "fault": "Fault", "throttle": "Throttle"}[status]
    if node.in_progress and status == "ok":
        status_text = "Pending"
    code = _http_status(node)
    code_html = f' <span class="code">{code}</span>' if code else ""
    tooltip = _esc(f"{name}: {_ms(node.duration)} at +{_ms(node.start - trace.start)}")
    indent = min(depth, _MAX_DEPTH_INDENT)
    return (
        f'<div class="{" ".join(classes)}" data-i="{index}" data-id="{_esc(node.id)}"'
        f' tabindex="0" role="row" aria-selected="false">'
        f'<div class="cell name" style="--d:{indent}"><span class="label">{_esc(name)}</span>'
        f"{''.join(badges)}</div>"
        f'<div class="cell status s-{status}">{status_text}{code_html}</div>'
        f'<div class="cell dur">{_ms(node.duration)}</div>'
        f'<div class="cell lane"><div class="{" ".join(bar_classes)}"'
        f' style="left:{left:.4f}%;width:{width:.4f}%" title="{tooltip}"></div></div>'
        "</div>"
    )


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

# Kept free of trace data: the CSP allows this exact text by its hash.
_SCRIPT = """
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("trace-data").textContent);
  var rows = Array.prototype.slice.call(document.querySelectorAll(".row[data-i]"));
  var title = document.getElementById("details-title");
  var body = document.getElementById("details-body");
  function el(tag, cls, text) {
    var node = document.createElement(tag);
    if (cls) { node.className = cls; }
    if (text !== undefined && text !== null) { node.textContent = String(text); }
    return node;
  }
  function scalar(value) {
    return value === null || typeof value !== "object";
  }
  function show(value) {
    return typeof value === "string" ? value : JSON.stringify(value, null, 2);
  }
  // An annotation naming another trace (LinkedTraceId on the worker's record
  // subsegment, InitTraceId on the first invocation) links to <trace id>.html
  // next to this page, as the map's node details do; only a well-formed X-Ray
  // trace id becomes a link, anything else stays text.
  var TRACE_ID = /^1-[0-9a-f]{8}-[0-9a-f]{24}$/;
  var LINK_KEYS = {"LinkedTraceId": true, "InitTraceId": true};
  function value(name, key, item) {
    var dd = el("dd");
    if (name === "annotations" && LINK_KEYS.hasOwnProperty(key) &&
        typeof item === "string" && TRACE_ID.test(item)) {
      var link = el("a", "trace-link", item);
      link.href = item + ".html";
      link.title = "Open " + item + ".html next to this page " +
        "(write it with tracing show " + item + " --html " + item + ".html)";
      dd.appendChild(link);
    } else {
      dd.textContent = show(item);
    }
    return dd;
  }
  function keyValues(name, object) {
    var dl = el("dl", "kv");
    Object.keys(object).forEach(function (key) {
      dl.appendChild(el("dt", null, key));
      dl.appendChild(value(name, key, object[key]));
    });
    return dl;
  }
  function section(name, value) {
    if (value === undefined || value === null) { return; }
    if (typeof value === "object" && Object.keys(value).length === 0) { return; }
    var box = el("section", "detail-" + name);
    box.appendChild(el("h3", null, name));
    var flat = typeof value === "object" && !Array.isArray(value) &&
      Object.keys(value).every(function (key) { return scalar(value[key]); });
    box.appendChild(flat ? keyValues(name, value) : el("pre", null, show(value)));
    body.appendChild(box);
  }
  // The header lists the traces this one names (see _linked_traces), so the
  // producer's and the worker's traces link to each other where the data says so.
  var links = document.getElementById("links");
  var listed = (Array.isArray(data.links) ? data.links : []).filter(function (link) {
    return link && typeof link.trace_id === "string" && TRACE_ID.test(link.trace_id);
  });
  if (listed.length) {
    links.appendChild(el("span", null, "Linked traces: "));
    var list = links.appendChild(el("ul"));
    listed.forEach(function (link) {
      var item = list.appendChild(el("li"));
      var a = item.appendChild(el("a", "trace-link", link.trace_id));
      a.href = link.trace_id + ".html";
      var names = Array.isArray(link.from) ? link.from.join(", ") : "";
      item.appendChild(el("span", "from", names ? " named by " + names : ""));
    });
    links.appendChild(el("span", "from", " (each opens <trace id>.html next to this " +
      "page: write it with tracing show <trace id> --html <trace id>.html)"));
  }
  var thrown = {};  // exception id -> the entity that recorded it
  data.nodes.forEach(function (node) {
    var cause = node.cause;
    if (cause && typeof cause === "object" && Array.isArray(cause.exceptions)) {
      cause.exceptions.forEach(function (e) {
        if (e && typeof e.id === "string" && !(e.id in thrown)) { thrown[e.id] = node.name; }
      });
    }
  });
  function causeSection(cause) {
    var box = el("section", "detail-cause");
    box.appendChild(el("h3", null, "cause"));
    if (typeof cause === "string") {
      box.appendChild(el("p", "same", cause in thrown ?
        "same exception as " + thrown[cause] : "exception " + cause + " (not in this trace)"));
      body.appendChild(box);
      return;
    }
    if (!cause || typeof cause !== "object" || !Array.isArray(cause.exceptions)) {
      box.appendChild(el("pre", null, show(cause)));
      body.appendChild(box);
      return;
    }
    cause.exceptions.forEach(function (e) {
      if (!e || typeof e !== "object") { return; }
      var one = el("div", "exception");
      var what = (e.type || "Exception") + (e.message ? ": " + e.message : "");
      one.appendChild(el("p", "what", what));
      if (Array.isArray(e.stack) && e.stack.length) {
        var frames = el("ol", "frames");
        e.stack.forEach(function (f) {
          if (!f || typeof f !== "object") { return; }
          var line = f.line === undefined ? "?" : f.line;
          frames.appendChild(el("li", null, (f.path || "?") + ":" + line +
            (f.label ? " in " + f.label : "")));
        });
        one.appendChild(frames);
      }
      if (typeof e.cause === "string" && e.cause in thrown) {
        one.appendChild(el("p", "same", "caused by the exception of " + thrown[e.cause]));
      }
      box.appendChild(one);
    });
    if (cause.working_directory) {
      box.appendChild(el("p", "cwd", "working directory " + cause.working_directory));
    }
    body.appendChild(box);
  }
  function select(index) {
    var node = data.nodes[index];
    if (!node) { return; }
    rows.forEach(function (row) {
      var on = Number(row.getAttribute("data-i")) === index;
      row.classList.toggle("selected", on);
      row.setAttribute("aria-selected", on ? "true" : "false");
    });
    title.textContent = node.name;
    while (body.firstChild) { body.removeChild(body.firstChild); }
    var facts = {
      "id": node.id,
      "kind": node.kind + (node.document_root ? " (document)" : ""),
      "status": node.status,
      "start": node.start,
      "offset": "+" + node.offset,
      "duration": node.duration
    };
    if (node.parent_id) {
      facts["parent"] = node.parent_id + (node.orphan ? " (not in this trace)" : "");
    }
    if (node.init) { facts["init"] = "yes"; }
    if (node.cold_start) { facts["cold start"] = "yes"; }
    section("overview", facts);
    ["annotations", "metadata", "aws", "http", "cause", "sql", "namespace", "origin",
     "type", "precursor_ids"].forEach(function (key) {
      if (key === "cause" && node.cause !== undefined && node.cause !== null) {
        causeSection(node.cause);
      } else {
        section(key, node[key]);
      }
    });
  }
  // Zoom: the bars and the axis show [view.from, view.to] (ms from the trace's
  // start). Drag across the axis (or shift-drag across the rows) to pick a range;
  // "z" on a row zooms to it; "Reset zoom" or Escape shows the whole trace.
  var total = typeof data.total === "number" && data.total > 0 ? data.total : 0;
  var view = {from: 0, to: total};
  var MIN_SPAN = 0.001;
  var timeline = document.querySelector(".timeline");
  var axisLane = document.getElementById("axis-lane");
  var zoombar = document.getElementById("zoombar");
  var range = zoombar.appendChild(el("span", null, "Whole trace"));
  range.id = "zoom-range";
  var reset = zoombar.appendChild(el("button", null, "Reset zoom"));
  reset.id = "zoom-reset";
  reset.type = "button";
  reset.disabled = true;
  var hint = zoombar.appendChild(el("span", "hint", "Zoom: drag across the time axis " +
    "(or shift-drag across the rows); "));
  hint.appendChild(el("kbd", null, "z"));
  hint.appendChild(document.createTextNode(" on a row zooms to it, "));
  hint.appendChild(el("kbd", null, "Esc"));
  hint.appendChild(document.createTextNode(" resets."));
  var brush = timeline.appendChild(el("div", "brush"));
  brush.hidden = true;
  var bars = rows.map(function (row) { return row.querySelector(".bar"); });
  function niceStep(span) {
    if (!(span > 0)) { return 1; }
    var raw = span / 6;
    var magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
    var factors = [1, 2, 5, 10];
    for (var i = 0; i < factors.length; i++) {
      if (raw <= factors[i] * magnitude) { return factors[i] * magnitude; }
    }
    return 10 * magnitude;
  }
  // The same rule as _tick_label in html_view.py.
  function label(ms, step, span) {
    if (step >= 1000) {
      return (ms / 1000).toFixed(Math.max(0, -Math.floor(Math.log10(step / 1000) + 1e-9))) + " s";
    }
    var digits = Math.max(span < 10 ? 1 : 0, Math.ceil(-Math.log10(step) - 1e-9));
    return ms.toFixed(Math.min(digits, 9)) + " ms";
  }
  function drawAxis() {
    var span = view.to - view.from;
    Array.prototype.slice.call(axisLane.querySelectorAll(".tick")).forEach(function (tick) {
      axisLane.removeChild(tick);
    });
    var step = niceStep(span);
    // NOTE: offsets come from epoch floats (about 0.3 µs apart): a tick within
    // 0.1 % of a step of either end counts as on it.
    var first = Math.ceil(view.from / step - 1e-3) * step;
    for (var i = 0; i <= 50; i++) {
      var ms = first + i * step;
      if (ms > view.to + step * 1e-3) { break; }
      var left = span > 0 ? (ms - view.from) / span * 100 : 0;
      var tick = el("span", "tick", label(ms, step, span));
      tick.style.left = left.toFixed(4) + "%";
      tick.style.transform = left < 3 ? "none" : (left > 97 ? "translateX(-100%)" :
        "translateX(-50%)");
      axisLane.appendChild(tick);
    }
    var width = axisLane.clientWidth;
    if (span > 0 && width > 0) {
      var px = step / span * width;
      timeline.style.setProperty("--grid", px.toFixed(3) + "px");
      rows.forEach(function (row) {
        row.querySelector(".lane").style.backgroundPosition =
          ((first - view.from) / span * width).toFixed(3) + "px 0";
      });
    }
  }
  function drawBars() {
    var span = view.to - view.from;
    bars.forEach(function (bar, i) {
      var node = data.nodes[Number(rows[i].getAttribute("data-i"))];
      if (!bar || !node || typeof node.at !== "number" || !(span > 0)) { return; }
      var start = Math.max(node.at, view.from);
      var end = Math.min(node.until, view.to);
      var out = node.until < view.from || node.at > view.to;
      bar.classList.toggle("out", out);
      bar.style.left = ((start - view.from) / span * 100).toFixed(4) + "%";
      bar.style.width = (Math.max(end - start, 0) / span * 100).toFixed(4) + "%";
    });
  }
  function zoom(from, to) {
    from = Math.max(0, Math.min(from, total));
    to = Math.max(0, Math.min(to, total));
    if (!(to > from)) { return; }
    if (to - from < MIN_SPAN) {  // no closer than 1 µs: float offsets end there
      var middle = (from + to) / 2;
      from = Math.max(0, middle - MIN_SPAN / 2);
      to = Math.min(total, from + MIN_SPAN);
    }
    view.from = from;
    view.to = to;
    var whole = from <= 0 && to >= total;
    reset.disabled = whole;
    var fine = niceStep(to - from) / 10;
    range.textContent = whole ? "Whole trace" : "Zoomed to +" + label(from, fine, to - from) +
      " … +" + label(to, fine, to - from);
    drawBars();
    drawAxis();
  }
  function resetZoom() { zoom(0, total); }
  function zoomTo(node) {
    var from = node.at;
    var to = node.until;
    if (!(to > from)) {  // an instant: a window around it
      var pad = Math.max(total / 1000, 0.001);
      from -= pad;
      to += pad;
    }
    zoom(from, to);
  }
  reset.addEventListener("click", resetZoom);
  document.addEventListener("keydown", function (event) {
    if (event.key === "Escape" && !reset.disabled) { resetZoom(); }
  });
  window.addEventListener("resize", drawAxis);
  var drag = null;
  var dragged = false;
  var suppress = false;  // the click that ends a shift-drag across a row
  document.addEventListener("mousedown", function () { suppress = false; }, true);
  function timeAt(x) {
    var box = axisLane.getBoundingClientRect();
    var fraction = box.width > 0 ? (x - box.left) / box.width : 0;
    return view.from + Math.max(0, Math.min(1, fraction)) * (view.to - view.from);
  }
  function clampX(x) {
    var box = axisLane.getBoundingClientRect();
    return Math.max(box.left, Math.min(box.right, x));
  }
  function moveBrush(x) {
    var outer = timeline.getBoundingClientRect();
    var a = clampX(drag.x);
    var b = clampX(x);
    brush.style.left = (Math.min(a, b) - outer.left) + "px";
    brush.style.width = Math.abs(b - a) + "px";
    brush.hidden = false;
  }
  function startDrag(event) {
    if (event.button !== 0 || !(total > 0)) { return; }
    event.preventDefault();
    drag = {x: event.clientX};
    dragged = false;
  }
  axisLane.addEventListener("mousedown", startDrag);
  rows.forEach(function (row) {
    row.querySelector(".lane").addEventListener("mousedown", function (event) {
      if (event.shiftKey) { startDrag(event); }
    });
  });
  document.addEventListener("mousemove", function (event) {
    if (!drag) { return; }
    if (Math.abs(event.clientX - drag.x) >= 3) { dragged = true; }
    if (dragged) { moveBrush(event.clientX); }
  });
  document.addEventListener("mouseup", function (event) {
    if (!drag) { return; }
    var from = timeAt(drag.x);
    var to = timeAt(event.clientX);
    drag = null;
    brush.hidden = true;
    suppress = dragged;
    if (dragged) { zoom(Math.min(from, to), Math.max(from, to)); }
  });
  if (total > 0) { drawAxis(); }
  rows.forEach(function (row) {
    var index = Number(row.getAttribute("data-i"));
    row.addEventListener("click", function () {
      if (suppress) { suppress = false; return; }
      select(index);
    });
    row.addEventListener("keydown", function (event) {
      if (event.key === "Enter" || event.key === " ") {
        event.preventDefault();
        select(index);
      } else if (event.key === "z" && !event.ctrlKey && !event.metaKey && !event.altKey) {
        event.preventDefault();
        if (data.nodes[index]) { zoomTo(data.nodes[index]); }
      } else if (event.key === "ArrowDown" || event.key === "ArrowUp") {
        event.preventDefault();
        var next = rows[rows.indexOf(row) + (event.key === "ArrowDown" ? 1 : -1)];
        if (next) { next.focus(); select(Number(next.getAttribute("data-i"))); }
      }
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
<header>
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
