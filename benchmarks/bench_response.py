"""Response latency with a network exporter: export after the response, or before it.

Through the real runtime (``awslambdaric`` in ``LocalLambda``), a traced handler
with ``exporter="otlp"`` posting to an OTLP endpoint of our own on 127.0.0.1
that answers after 300 ms (and after 0 ms). Measured per invocation: from the
handler's own return (its ``time.time()``, in the function) to the moment the
Runtime API server received the response (the same clock, in this process).

Cases, all in the same run:

* ``extension``: the in-process Lambda extension exports after the response;
* ``before return``: the extension turned off (``TRACING_EXTENSION=0``): the
  export happens in the handler wrapper, before the runtime posts the response;
* ``untraced``: ``TRACING_DISABLED=1``, the runtime's own handler-to-response
  time, the anchor of the target (≤ +1 ms over it, with the 300 ms endpoint).

The extension's ``post response`` row is the time the export kept the sandbox
from freezing (Lambda's ``PostRuntimeExtensionsDuration``), billed but not
waited for.
"""

from __future__ import annotations

import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from . import _harness as bh

ORDER = 96
BENCH = "response latency, otlp endpoint"

APP = """
import time

import tracing

tracing.configure(service="bench-response")


@tracing.handler
def handler(event, context):
    with tracing.span("work", step=1):
        pass
    return {"returned": time.time()}
"""


class _Endpoint:
    """OTLP/HTTP endpoint answering 200 after ``delay_s``."""

    def __init__(self, delay_s: float) -> None:
        delay = delay_s

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                if delay:
                    time.sleep(delay)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _measure(code_dir: str, env: dict[str, str], rounds: int) -> tuple[list[float], list[float]]:
    """Milliseconds from handler return to response, and after the response."""
    from tracing.local.runtime import LocalLambda

    function = LocalLambda("bench_app.handler", code_dir=code_dir, env=env, timeout_s=10.0)
    latencies: list[float] = []
    post: list[float] = []
    with function:
        for index in range(rounds + 1):
            result = function.invoke({}, trace_header=bh.trace_header())
            now_wall, now_perf = time.time(), time.perf_counter()
            if not result.ok:
                raise RuntimeError(f"invocation failed: {result.error}\n{function.logs}")
            responded_wall = now_wall - (now_perf - result.responded_at)
            after = result.post_response_ms(timeout=10.0)
            if index == 0:
                continue  # the cold start: imports, Init
            latencies.append((responded_wall - result.payload["returned"]) * 1000.0)
            post.append(after or 0.0)
    return latencies, post


def run() -> list[dict[str, Any]]:
    rounds = bh.scaled(25, minimum=5)
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "bench_app.py").write_text(APP)
        for delay_ms in (300, 0):
            endpoint = _Endpoint(delay_ms / 1000.0)
            try:
                base = {
                    "TRACING_EXPORTER": "otlp",
                    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint.url,
                }
                cases = {
                    "extension": base,
                    "before return": {**base, "TRACING_EXTENSION": "0"},
                    "untraced": {**base, "TRACING_DISABLED": "1"},
                }
                measured: dict[str, dict[str, Any]] = {}
                extension_post: list[float] = []
                for case, env in cases.items():
                    latencies, post = _measure(tmp, env, rounds)
                    name = f"{case}, endpoint {delay_ms} ms"
                    measured[case] = bh.measured(BENCH, name, latencies, "ms")
                    if case == "extension":
                        extension_post = post
            finally:
                endpoint.close()
            untraced = measured["untraced"]
            limit = 1.0 if delay_ms else None
            bh.compare(
                measured["extension"],
                untraced,
                kind="diff",
                limit=limit,
                target="≤ +1 ms" if limit else "",
                vs="untraced",
            )
            bh.compare(measured["before return"], untraced, kind="diff", vs="untraced")
            rows.extend(measured.values())
            rows.append(
                bh.measured(
                    BENCH,
                    f"extension, endpoint {delay_ms} ms: post response (billed, not waited for)",
                    extension_post,
                    "ms",
                )
            )
    return rows
