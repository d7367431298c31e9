"""``tracing ui``: the stored traces in a browser, on 127.0.0.1.

Three kinds of page, all read from the store the daemon writes to (SQLite; any
number of readers beside the daemon):

* ``/``: the trace list with its filter box (:mod:`.trace_list`), answered by the
  collector's ``GetTraceSummaries`` (:mod:`tracing.local.collector.xray_query`);
* ``/<trace id>.html``: that trace's timeline, the page ``tracing show --html``
  writes; its ``LinkedTraceId``/``InitTraceId`` links (``<trace id>.html``) and
  the map's trace links resolve here, so every trace leads to the ones it names;
* ``/map.html``: the service map of the chosen window's traces.

It never changes what is stored (a query may fill in the store's per-trace
index, as the collector does; SQLite's WAL and busy timeout let both processes
at it), answers ``GET``/``HEAD`` only, and refuses a request whose
``Host`` names it by a DNS name rather than an address or ``localhost`` (a page
elsewhere cannot reach it through a name pointed at 127.0.0.1). Pages fetch
nothing from the network.
"""

from __future__ import annotations

import ipaddress
import logging
import re
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from tracing.local.collector.store import TraceStore

__all__ = ["TraceUI"]

log = logging.getLogger("tracing.local.views")

_TRACE_PAGE = re.compile(r"/(1-[0-9a-f]{8}-[0-9a-f]{24})\.html")
_MAX_EXPRESSION = 2000  # characters of a filter expression taken from a URL
_MAP_TRACES = 1000  # newest traces drawn on the map


class TraceUI:
    """The pages over ``store``, served on ``host:port`` (port 0: any free one).

    Use as a context manager, or :meth:`start` and :meth:`stop`.
    """

    def __init__(self, store: TraceStore, host: str = "127.0.0.1", port: int = 0) -> None:
        self.store = store
        ui = self

        class Handler(BaseHTTPRequestHandler):
            server_version = "tracing-ui"

            def do_GET(self) -> None:
                ui._answer(self, head=False)

            def do_HEAD(self) -> None:
                ui._answer(self, head=True)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("tracing ui: %s", format % args)

        self._server = ThreadingHTTPServer((host, port), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None
        self._pages: dict[str, Callable[[dict[str, str]], tuple[int, str, str]]] = {
            "/": self._list,
            "/index.html": self._list,
            "/map.html": self._map,
        }

    @property
    def url(self) -> str:
        """Where the trace list is, e.g. ``http://127.0.0.1:8000/``."""
        host, port = self._server.server_address[:2]
        host = str(host)
        return f"http://[{host}]:{port}/" if ":" in host else f"http://{host}:{port}/"

    def start(self) -> TraceUI:
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tracing-ui", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(5.0)

    def __enter__(self) -> TraceUI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- requests ------------------------------------------------------------------

    def _answer(self, request: BaseHTTPRequestHandler, head: bool) -> None:
        status, body, csp = 404, *_message("Not found", "No such page.")
        try:
            if not self._host_ok(request.headers.get("Host", "")):
                status, body, csp = 421, *_message("Wrong host", "Open this server by its address.")
            else:
                url = urlsplit(request.path)
                query = {k: v[-1] for k, v in parse_qs(url.query).items()}
                page = self._pages.get(url.path)
                found = _TRACE_PAGE.fullmatch(url.path)
                if page is not None:
                    status, body, csp = page(query)
                elif found is not None:
                    status, body, csp = self._trace(found.group(1))
        except Exception:
            log.warning("tracing ui: could not answer %s", request.path, exc_info=True)
            status, body, csp = 500, *_message("Error", "This page failed; see the log.")
        data = body.encode("utf-8")
        request.send_response(status)
        request.send_header("Content-Type", "text/html; charset=utf-8")
        request.send_header("Content-Length", str(len(data)))
        request.send_header("Cache-Control", "no-store")
        request.send_header("X-Content-Type-Options", "nosniff")
        request.send_header("Referrer-Policy", "no-referrer")
        request.send_header("Content-Security-Policy", csp)  # (the page's own, as its meta)
        request.end_headers()
        if not head:
            request.wfile.write(data)

    def _host_ok(self, host: str) -> bool:
        """The ``Host`` names this server by address (an IP literal or localhost)
        and port: never by a DNS name, which a page elsewhere could point here."""
        port = str(self._server.server_address[1])
        name, _, given = host.lower().rpartition(":")
        if given != port:
            return False
        if name == "localhost":
            return True
        try:
            ipaddress.ip_address(name[1:-1] if name.startswith("[") else name)
        except ValueError:
            return False
        return True

    # -- pages ---------------------------------------------------------------------

    def _list(self, query: dict[str, str]) -> tuple[int, str, str]:
        from tracing.local.collector.xray_query import QueryAPI, QueryError
        from tracing.local.views.trace_list import LIST_CSP, render_trace_list, window_entry

        expression = query.get("filter", "").strip()[:_MAX_EXPRESSION]
        window, _, seconds = window_entry(query.get("since"))
        now = time.time()
        request: dict[str, Any] = {
            "StartTime": now - seconds if seconds else 0.0,
            "EndTime": now + 60.0,  # (clocks of other machines, traces still arriving)
        }
        if expression:
            request["FilterExpression"] = expression
        if query.get("page"):
            request["NextToken"] = query["page"]
        try:
            answer = QueryAPI(self.store, page_size=100).get_trace_summaries(request)
        except QueryError as exc:
            # (200: the page answers the form; a 400 would read as a broken page)
            page = render_trace_list(
                [], expression=expression, window=window, error=str(exc), column=exc.column
            )
            return 200, page, LIST_CSP
        token = answer.get("NextToken")
        next_page = (
            urlencode({"filter": expression, "since": window, "page": token}) if token else None
        )
        page = render_trace_list(
            answer["TraceSummaries"],
            expression=expression,
            window=window,
            processed=answer.get("TracesProcessedCount", 0),
            next_page=next_page,
            stored=self.store.trace_count(),
        )
        return 200, page, LIST_CSP

    def _trace(self, trace_id: str) -> tuple[int, str, str]:
        from tracing.local.collector.traces import assemble
        from tracing.local.views._page import page_csp
        from tracing.local.views.render import render_html
        from tracing.local.views.timeline_script import _SCRIPT

        documents = self.store.documents(trace_id)
        if not documents:
            return 404, *_message(
                "Trace not stored", f"{trace_id} is not in this store (yet).", back=True
            )
        return 200, render_html(assemble(documents)), page_csp(_SCRIPT)

    def _map(self, query: dict[str, str]) -> tuple[int, str, str]:
        from tracing.local.collector.service_graph import build_map
        from tracing.local.collector.traces import assemble
        from tracing.local.views._page import page_csp
        from tracing.local.views.map_page import _SCRIPT
        from tracing.local.views.service_map import render_map_html
        from tracing.local.views.trace_list import window_entry

        _, label, seconds = window_entry(query.get("since"))
        since = time.time() - seconds if seconds else None
        ids = self.store.trace_ids(since, _MAP_TRACES)
        service_map = build_map(assemble(self.store.documents(t)) for t in ids)
        page = render_map_html(service_map, facts=f"the newest traces of {label}")
        return 200, page, page_csp(_SCRIPT)


def _message(title: str, text: str, back: bool = False) -> tuple[str, str]:
    """A page saying one thing, and its policy."""
    from tracing.local.views._page import PAGE_HEAD, _esc
    from tracing.local.views.trace_list import LIST_CSP

    link = '<p><a href="./">Back to the trace list</a></p>' if back else ""
    head = PAGE_HEAD.format(csp=LIST_CSP, title=_esc(title), style="")
    return f"{head}<h1>{_esc(title)}</h1><p>{_esc(text)}</p>{link}</body></html>", LIST_CSP
