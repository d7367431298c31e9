"""The trace list page: the stored traces, searched with X-Ray's filter expressions.

What the console's *Traces* page is: a search box taking a filter expression
(``annotation.sku = "book-1"``, ``service("orders-api") { fault }``,
``responsetime > 1``), a time window, and one row per matching trace with its
status, response time, duration, services and HTTP request, each trace id a
link to that trace's timeline. The expression is evaluated by the collector's
``GetTraceSummaries`` (the same evaluator as ``tracing traces --filter`` and
``aws xray get-trace-summaries``), so the three always agree.

The page is plain HTML: a ``GET`` form and links, no script at all, so it works
with the keyboard alone and under a Content-Security-Policy that allows no
script. Every value from trace data is escaped. A bad expression is answered on
the page with X-Ray's message and a caret under the column it names.
"""

from __future__ import annotations

import datetime
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import urlencode

from tracing.local.views._page import PAGE_HEAD, _esc, page_csp

__all__ = ["EXAMPLES", "LIST_CSP", "WINDOWS", "render_trace_list", "window_entry"]

#: The time windows offered, as the console offers them (label, seconds; 0: all).
WINDOWS: tuple[tuple[str, str, float], ...] = (
    ("5m", "the last 5 minutes", 300.0),
    ("1h", "the last hour", 3600.0),
    ("6h", "the last 6 hours", 21600.0),
    ("1d", "the last day", 86400.0),
    ("7d", "the last 7 days", 604800.0),
    ("all", "all stored traces", 0.0),
)
#: Expressions shown under the box, as links: what a newcomer can start from.
EXAMPLES = (
    "responsetime > 0.5",
    "fault OR error",
    'annotation.sku = "book-1"',
    'service("orders-worker") { fault }',
    'edge("orders-api", "orders") { error OR fault }',
    "http.status = 500",
)
#: Scripts: none. Forms may only go back to this server.
LIST_CSP = page_csp(None, form_action="'self'")
_MAX_ANNOTATIONS = 4  # per row; the timeline has them all


def _when(seconds: Any) -> str:
    try:
        moment = datetime.datetime.fromtimestamp(float(seconds), tz=datetime.timezone.utc)
    except (TypeError, ValueError, OverflowError, OSError):
        return "-"
    return moment.strftime("%Y-%m-%d %H:%M:%S.%f")[:-3] + " UTC"


def _seconds(value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.2f} s"


def _status(summary: Mapping[str, Any]) -> tuple[str, str]:
    http = summary.get("Http") or {}
    code = http.get("HttpStatus")
    code_text = f" {code}" if isinstance(code, int) and not isinstance(code, bool) else ""
    if summary.get("HasFault"):
        return "fault", "Fault" + code_text
    if summary.get("HasThrottle"):
        return "throttle", "Throttle" + code_text
    if summary.get("HasError"):
        return "error", "Error" + code_text
    return "ok", "OK" + code_text


def _annotations(summary: Mapping[str, Any], expression: str) -> str:
    shown = []
    annotations = summary.get("Annotations") or {}
    # Those the expression names first: they are why the row is here.
    keys = sorted(annotations, key=lambda k: f"annotation.{k}" not in expression)
    for key in keys:
        values = annotations[key]
        for value in values:
            typed = value.get("AnnotationValue") or {}
            for item in typed.values():
                shown.append(f"{key}={item}")
    extra = len(shown) - _MAX_ANNOTATIONS
    text = ", ".join(shown[:_MAX_ANNOTATIONS]) + (f" (+{extra})" if extra > 0 else "")
    return _esc(text)


def _services(summary: Mapping[str, Any]) -> str:
    names = [str(s.get("Name", "")) for s in summary.get("ServiceIds") or [] if s.get("Name")]
    return ", ".join(dict.fromkeys(names))


def _row(summary: Mapping[str, Any], expression: str) -> str:
    trace_id = str(summary.get("Id", ""))
    kind, status = _status(summary)
    http = summary.get("Http") or {}
    request = " ".join(str(p) for p in (http.get("HttpMethod"), http.get("HttpURL")) if p)
    partial = ' <span class="partial">in progress</span>' if summary.get("IsPartial") else ""
    return (
        f'<tr><td class="id"><a href="{_esc(trace_id)}.html">{_esc(trace_id)}</a>{partial}</td>'
        f'<td class="status s-{kind}">{_esc(status)}</td>'
        f'<td class="num">{_seconds(summary.get("ResponseTime"))}</td>'
        f'<td class="num">{_seconds(summary.get("Duration"))}</td>'
        f"<td>{_esc(_services(summary))}</td><td>{_esc(request)}</td>"
        f"<td>{_esc(_when(summary.get('StartTime')))}</td>"
        f'<td class="notes">{_annotations(summary, expression)}</td></tr>'
    )


def window_entry(key: str | None) -> tuple[str, str, float]:
    """The :data:`WINDOWS` entry of ``key`` (the last hour when it names none)."""
    for entry in WINDOWS:
        if entry[0] == key:
            return entry
    return WINDOWS[1]


def _error(expression: str, message: str, column: int | None) -> str:
    caret = ""
    if column is not None and expression:
        column = max(1, min(column, len(expression) + 1))
        caret = f"<pre>{_esc(expression)}\n{' ' * (column - 1)}^</pre>"
    return f'<div class="error" role="alert"><p>{_esc(message)}</p>{caret}</div>'


def render_trace_list(
    summaries: Sequence[Mapping[str, Any]],
    *,
    expression: str = "",
    window: str = "1h",
    error: str | None = None,
    column: int | None = None,
    processed: int = 0,
    next_page: str | None = None,
    stored: int | None = None,
) -> str:
    """The page: the form, a status line, and a row per summary.

    Args:
        summaries: X-Ray ``TraceSummary`` shapes (``GetTraceSummaries``).
        expression: The filter expression as typed (shown back in the box).
        window: The chosen key of :data:`WINDOWS`.
        error: The answer to a bad expression (nothing else is shown then).
        column: Where in the expression the error is (1-based), for a caret.
        processed: Traces the query looked at.
        next_page: The query string of the next page, when there is one.
        stored: Traces in the store, for the status line.
    """
    options = "".join(
        f'<option value="{key}"{" selected" if key == window else ""}>{_esc(label)}</option>'
        for key, label, _ in WINDOWS
    )
    examples = " ".join(
        f'<a href="?{_esc(urlencode({"filter": e, "since": window}))}"><code>{_esc(e)}</code></a>'
        for e in EXAMPLES
    )
    if error is not None:
        body = _error(expression, error, column)
    elif not summaries:
        what = "match this expression" if expression else "were received"
        wider = (
            f' <a href="?{_esc(urlencode({"filter": expression, "since": "all"}))}">'
            "Search all stored traces</a>"
            if window != "all"
            else ""
        )
        body = (
            f'<p class="status-line" role="status">No traces {what} in '
            f"{_esc(window_entry(window)[1])} "
            f"({processed} looked at).{wider}</p>"
        )
    else:
        more = f' <a href="?{_esc(next_page)}" rel="next">Next page</a>' if next_page else ""
        of = f" of {stored} stored" if stored is not None else ""
        body = (
            f'<p class="status-line" role="status">{len(summaries)} trace'
            f"{'s' if len(summaries) != 1 else ''} shown ({processed} looked at{of}).{more}</p>"
            '<table><caption class="sr">Traces, newest first</caption><thead><tr>'
            '<th scope="col">Trace id</th><th scope="col">Status</th>'
            '<th scope="col">Response time</th><th scope="col">Duration</th>'
            '<th scope="col">Services</th><th scope="col">HTTP request</th>'
            '<th scope="col">Started</th><th scope="col">Annotations</th></tr></thead><tbody>'
            + "".join(_row(s, expression) for s in summaries)
            + "</tbody></table>"
        )
    page = (
        PAGE_HEAD.format(csp=LIST_CSP, title="Traces", style=_STYLE)
        + '<header><h1>Traces</h1><nav><a href="map.html">Service map</a></nav></header><main>'
        '<form method="get" action="" role="search">'
        '<label for="filter">Filter expression</label>'
        f'<input id="filter" name="filter" value="{_esc(expression)}" autocomplete="off" '
        'spellcheck="false" placeholder=\'annotation.sku = "book-1"\' autofocus>'
        f'<label for="since">Time</label><select id="since" name="since">{options}</select>'
        '<button type="submit">Search</button></form>'
        f'<p class="examples">Try: {examples}. The language is X-Ray\'s own '
        "(<code>rootcause.*</code>, groups and <code>json</code> are not supported locally).</p>"
        f"{body}</main></body></html>"
    )
    return page.encode("utf-8", "replace").decode("utf-8")


_STYLE = """
:root{--ok:#1d8102;--error:#eb5f07;--fault:#d13212;--throttle:#8c4fff;--line:#eaeded;
--muted:#687078}
*{box-sizing:border-box}
body{margin:0;font:13px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",
Arial,sans-serif;color:#16191f;background:#f2f3f3}
header{background:#232f3e;color:#fff;padding:12px 20px;display:flex;gap:24px;
align-items:baseline}
header h1{font-size:17px;margin:0;font-weight:600}
header a{color:#fff}
main{padding:16px 20px}
form{display:flex;flex-wrap:wrap;gap:8px;align-items:center;background:#fff;
border:1px solid #d5dbdb;border-radius:4px;padding:10px 12px}
label{font-weight:600}
input{flex:1 1 420px;font:13px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;
padding:6px 8px;border:1px solid #879596;border-radius:2px}
select,button{font:inherit;padding:5px 10px}
button{background:#ec7211;color:#fff;border:1px solid #ec7211;border-radius:2px;
font-weight:600;cursor:pointer}
:focus-visible{outline:2px solid #0073bb;outline-offset:2px}
.examples{color:var(--muted)}
.examples a{margin-right:6px}
code{font:12px ui-monospace,SFMono-Regular,Menlo,Consolas,monospace}
.status-line{margin:10px 0}
.error{background:#fff;border:1px solid var(--fault);border-left:4px solid var(--fault);
padding:8px 12px;margin:10px 0}
.error p{margin:0 0 6px;color:var(--fault);font-weight:600}
.error pre{margin:0;font-size:13px}
table{width:100%;border-collapse:collapse;background:#fff;border:1px solid #d5dbdb}
th,td{text-align:left;padding:6px 10px;border-top:1px solid var(--line);vertical-align:top;
overflow-wrap:break-word}
th{background:#fafafa;font-size:12px;color:var(--muted);white-space:nowrap}
td.id{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;white-space:nowrap}
td.num{text-align:right;white-space:nowrap}
.status.s-ok{color:var(--ok)}.status.s-error{color:var(--error)}
.status.s-fault{color:var(--fault);font-weight:600}.status.s-throttle{color:var(--throttle)}
.notes{color:var(--muted);font-size:12px}
.partial{color:var(--muted);font-size:11px;margin-left:6px}
.sr{position:absolute;width:1px;height:1px;overflow:hidden;clip:rect(0 0 0 0)}
"""
