"""Export after the response: the in-process Lambda extension, through the real runtime.

A function with ``exporter="otlp"`` runs in the real ``awslambdaric`` against our
Runtime API server (Extensions API included); its OTLP endpoint is the test's own
HTTP server on 127.0.0.1, which answers 300 ms after it read a request. The
response must not wait for those 300 ms, every span must arrive before the next
invocation starts, and the next invocation must wait for the export (Lambda's
freeze rule). With the Extensions API refused, the spans go before the return.
"""

from __future__ import annotations

import itertools
import textwrap
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracing._header import new_id, new_trace_id
from tracing.local.runtime import InvokeResult, LocalLambda

pytestmark = pytest.mark.integration

#: The endpoint's delay before it answers an export.
DELAY_S = 0.3
#: The response may not wait for the export: far below DELAY_S, loose for a busy
#: 2-core machine (the median is about half a millisecond; bench_response.py).
RESPONSE_BOUND_S = 0.15

APP = """
import time

import tracing

tracing.configure(service="after-response")


@tracing.handler
def handler(event, context):
    started = time.time()
    with tracing.span("work", step=event.get("step", 0)):
        pass
    return {"started": started, "returned": time.time()}
"""


class Endpoint:
    """An OTLP/HTTP endpoint that answers ``delay_s`` after reading each request."""

    def __init__(self, delay_s: float) -> None:
        self.delay_s = delay_s
        #: (time.time() when the request was read, its spans' names and trace ids)
        self.received: list[tuple[float, list[tuple[str, str]]]] = []
        self.lock = threading.Lock()
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                """Quiet."""

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                arrived = time.time()
                request = ExportTraceServiceRequest()
                request.ParseFromString(body)
                spans = [
                    (span.name, span.trace_id.hex())
                    for resource in request.resource_spans
                    for scope in resource.scope_spans
                    for span in scope.spans
                ]
                with endpoint.lock:
                    endpoint.received.append((arrived, spans))
                time.sleep(endpoint.delay_s)
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/traces"

    def spans_of(self, trace_id: str) -> list[tuple[float, str]]:
        """(arrival, name) of every span received in ``trace_id`` (X-Ray form)."""
        otel_id = trace_id[2:].replace("-", "")
        with self.lock:
            return [
                (arrived, name)
                for arrived, spans in self.received
                for name, trace in spans
                if trace == otel_id
            ]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def endpoint() -> Iterator[Endpoint]:
    served = Endpoint(DELAY_S)
    yield served
    served.close()


@pytest.fixture
def app(tmp_path: Path) -> Path:
    (tmp_path / "after_app.py").write_text(textwrap.dedent(APP))
    return tmp_path


def _function(app: Path, endpoint: Endpoint, backend: str, **options: Any) -> LocalLambda:
    return LocalLambda(
        "after_app.handler",
        code_dir=app,
        function_name="after-response",
        env={
            "TRACING_BACKEND": backend,
            "TRACING_EXPORTER": "otlp",
            "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": endpoint.url,
        },
        **options,
    )


def _invoke(function: LocalLambda, step: int) -> tuple[str, InvokeResult, float]:
    root = new_trace_id()
    result = function.invoke(
        {"step": step}, trace_header=f"Root={root};Parent={new_id()};Sampled=1"
    )
    answered = time.time()
    assert result.ok, (result.error, function.logs)
    return root, result, answered


def test_the_response_does_not_wait_for_the_export_and_no_span_is_lost(
    app: Path, endpoint: Endpoint, backend: str
) -> None:
    function = _function(app, endpoint, backend)
    with function:
        assert function.extensions == ["tracing"]
        runs = [_invoke(function, step) for step in range(3)]
        logs = function.logs
    waits = [answered - result.payload["returned"] for _, result, answered in runs]
    # The response came back right after the handler returned, not after the
    # endpoint's 300 ms: the export happened after it.
    assert max(waits) < RESPONSE_BOUND_S, (waits, logs)
    for index, (root, result, _answered) in enumerate(runs):
        # The export ran after the response, and the sandbox could only freeze
        # once it was done: the endpoint's delay is in the post-response time.
        post = result.post_response_ms(timeout=5.0)
        assert post is not None
        assert post >= DELAY_S * 1000 * 0.9, (
            index,
            post,
            waits,
            [r.duration_ms for _, r, _ in runs],
        )
        # By then (when Lambda could freeze) every span is there.
        spans = endpoint.spans_of(root)
        assert {"## handler", "work"} <= {name for _, name in spans}, (endpoint.received, logs)
        if index + 1 < len(runs):
            # Every span arrived before the next invocation started.
            next_start = runs[index + 1][1].payload["started"]
            assert max(arrived for arrived, _ in spans) < next_start
    # The next invocation waited for the export: it started at least the
    # endpoint's delay after the previous span's arrival.
    for (root, _, _), (_, following, _) in itertools.pairwise(runs):
        last_arrival = max(arrived for arrived, _ in endpoint.spans_of(root))
        assert following.payload["started"] - last_arrival >= DELAY_S * 0.9
    assert "Traceback" not in logs


def test_the_first_invocation_carries_init_and_is_exported_before_the_freeze(
    app: Path, endpoint: Endpoint, backend: str
) -> None:
    """One invocation, then nothing (aws-otel-lambda#787's case): its spans are
    still out by the time Lambda could freeze the sandbox."""
    function = _function(app, endpoint, backend)
    with function:
        root, result, _ = _invoke(function, 0)
        done = result.extensions_done_at(timeout=5.0)
        assert done is not None
        # Read when the sandbox could freeze: the spans are already there.
        spans = endpoint.spans_of(root)
    assert {"## handler", "work"} <= {name for _, name in spans}, endpoint.received


def test_without_the_extensions_api_spans_are_exported_before_the_return(
    app: Path, endpoint: Endpoint, backend: str
) -> None:
    function = _function(app, endpoint, backend, refuse_extensions=True)
    with function:
        assert function.extensions == []
        root, result, answered = _invoke(function, 0)
        second_root, _, second_answered = _invoke(function, 1)
        logs = function.logs
    assert "refused the registration" in logs
    for trace, at in ((root, answered), (second_root, second_answered)):
        # Already there when the response came back: sent before the return.
        spans = endpoint.spans_of(trace)
        assert {"## handler", "work"} <= {name for _, name in spans}, endpoint.received
        assert max(arrived for arrived, _ in spans) <= at
    # ... so the response waited for the endpoint.
    assert answered - result.payload["returned"] >= DELAY_S * 0.9
    assert result.post_response_ms() == 0.0


def test_turned_off_it_does_not_register(app: Path, endpoint: Endpoint) -> None:
    function = _function(app, endpoint, "xray")
    function.env["TRACING_EXTENSION"] = "0"
    with function:
        root, result, answered = _invoke(function, 0)
        assert function.extensions == []
    assert answered - result.payload["returned"] >= DELAY_S * 0.9
    assert {"## handler", "work"} <= {name for _, name in endpoint.spans_of(root)}


def test_xray_otlp_exports_after_the_response_too(app: Path, backend: str) -> None:
    """The SigV4-signed exporter takes the same way: the response does not wait for
    X-Ray's endpoint (here one that checks every signature and answers after 300 ms)."""
    from tests._sigv4_endpoint import ACCESS_KEY, SECRET_KEY, SigV4Endpoint

    with SigV4Endpoint(delay_s=DELAY_S) as xray:
        function = LocalLambda(
            "after_app.handler",
            code_dir=app,
            function_name="after-response",
            env={
                "TRACING_BACKEND": backend,
                "TRACING_EXPORTER": "xray-otlp",
                "AWS_ENDPOINT_URL_XRAY": xray.url,
                "AWS_REGION": "us-east-1",
                "AWS_ACCESS_KEY_ID": ACCESS_KEY,
                "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
            },
        )
        with function:
            assert function.extensions == ["tracing"]
            runs = [_invoke(function, step) for step in range(2)]
            posts = [result.post_response_ms(timeout=5.0) for _, result, _ in runs]
            logs = function.logs
        waits = [answered - result.payload["returned"] for _, result, answered in runs]
        assert max(waits) < RESPONSE_BOUND_S, (waits, logs)
        assert all(post is not None and post >= DELAY_S * 1000 * 0.9 for post in posts), posts
        assert xray.refused == []
        names = {span.name for span in xray.spans()}
        assert {"## handler", "work"} <= names, (names, logs)
