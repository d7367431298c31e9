"""An OTLP/HTTP receiver for the local collector (``tracing daemon --otlp-http``).

Takes ``POST /v1/traces`` with a protobuf ``ExportTraceServiceRequest`` (gzip
accepted), hands the documents X-Ray would make of its spans to the collector,
and answers as a collector does: ``200`` with an empty
``ExportTraceServiceResponse``, ``400`` for a body that is not one, ``413``
past 16 MiB. Loopback by default, like the UDP side.
"""

from __future__ import annotations

import gzip
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tracing.local.collector.otlp import request_documents

__all__ = ["MAX_BODY", "OTLPHTTPReceiver"]

log = logging.getLogger("tracing.local.collector.daemon")

MAX_BODY = 16 * 1024 * 1024


class OTLPHTTPReceiver:
    """Serves ``POST /v1/traces`` on ``listen`` in a thread.

    Args:
        listen: ``host:port``; port 0 picks a free port.
        submit: Called with the documents of every accepted request.
        count: Called as ``count(name, n)`` for the collector's counters.
    """

    def __init__(
        self,
        listen: str,
        submit: Callable[[list[dict[str, Any]]], None],
        count: Callable[[str, int], None],
    ) -> None:
        host, _, port = listen.rpartition(":")
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                receiver.handle(self)

            def log_message(self, format: str, *args: Any) -> None:
                log.debug("otlp-http: %s", format % args)

        self._server = ThreadingHTTPServer((host.strip("[]") or "127.0.0.1", int(port)), Handler)
        self._server.daemon_threads = True
        self._submit = submit
        self._count = count
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tracing-collector-otlp-http", daemon=True
        )

    @property
    def address(self) -> str:
        host, port = self._server.server_address[:2]
        return f"{host!s}:{port}"

    def start(self) -> OTLPHTTPReceiver:
        self._thread.start()
        log.info("tracing collector taking OTLP/HTTP on http://%s/v1/traces", self.address)
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(5)

    def handle(self, request: BaseHTTPRequestHandler) -> None:
        self._count("received", 1)
        if request.path.split("?", 1)[0] != "/v1/traces":
            self._answer(request, 404)
            return
        try:
            length = int(request.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._count("garbage", 1)
            self._answer(request, 413)
            return
        body = request.rfile.read(length)
        try:
            if request.headers.get("Content-Encoding", "").lower() == "gzip":
                body = gzip.decompress(body)
            documents = request_documents(body)
        except Exception:  # garbage of any kind: refused, counted, never fatal
            self._count("garbage", 1)
            self._answer(request, 400)
            return
        self._submit(documents)
        self._answer(request, 200)

    @staticmethod
    def _answer(request: BaseHTTPRequestHandler, status: int) -> None:
        request.send_response(status)
        request.send_header("Content-Type", "application/x-protobuf")
        request.send_header("Content-Length", "0")
        request.end_headers()
