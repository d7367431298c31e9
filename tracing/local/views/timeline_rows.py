"""The rows of the HTML timeline (:mod:`tracing.local.views.html_view`) and the
data its details panel shows for each row.

One ``<div class="row">`` per entity, in tree order, with its badges, status and
bar; per row a bounded, JSON-safe copy of the entity's details (annotations,
metadata, ``aws``, ``http``, ``cause``...), and the other traces this trace's
annotations name (``LinkedTraceId``, ``InitTraceId``) for the header's links.
Every string from trace data is escaped.
"""

from __future__ import annotations

import datetime
import math
import re
from typing import Any

from tracing.local.collector.traces import Node, Trace
from tracing.local.views._page import _esc
from tracing.local.views.render import _ms, _operation, _status

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


def _when(seconds: float) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(seconds, tz=datetime.timezone.utc)
    except (OverflowError, OSError, ValueError):
        return str(seconds)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


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
