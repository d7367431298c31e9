"""The local collector takes OTLP (T1S datagrams, OTLP/HTTP) and shows the same traces.

One traced program, two real collectors: one receives the X-Ray documents, the
other the OTLP spans of the very same run. ``tracing show`` must draw the same
tree from both stores, as the X-Ray console does.
"""

from __future__ import annotations

import base64
import gzip
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

import tracing
from tests._emitters import Both
from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing._otlp import Request, resource, span_message
from tracing._runtime import get_runtime
from tracing.exporters.otlp_http import OTLPHTTPEmitter
from tracing.exporters.xray_udp import HEADER, UDPEmitter
from tracing.local.collector.daemon import Collector
from tracing.local.collector.store import TraceStore
from tracing.local.collector.traces import assemble
from tracing.local.views.render import render_text

from .test_daemon import RawSender, wait_until


@pytest.fixture
def collectors() -> Iterator[tuple[Collector, Collector]]:
    with (
        TraceStore(":memory:") as xray_store,
        TraceStore(":memory:") as otlp_store,
        Collector("127.0.0.1:0", xray_store, quiet_s=0.1) as xray,
        Collector("127.0.0.1:0", otlp_store, quiet_s=0.1, otlp_http="127.0.0.1:0") as otlp,
    ):
        yield xray, otlp


pytestmark = pytest.mark.usefixtures("in_lambda")


def _run(monkeypatch: pytest.MonkeyPatch) -> str:
    with tracing.span("load config", source="ssm"):
        pass

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracing.span("work", tier="gold"):
            try:
                with tracing.span("flaky"):
                    raise ValueError("bad input")
            except ValueError:
                pass

    root = new_trace_id()
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={new_id()};Sampled=1")
    handler({}, testing.FakeContext())
    return root


def _rendered(collector: Collector, trace_id: str) -> list[str]:
    """The trace as the collector stored it, once all of it is stored: every span of
    the Init and of the invocation (a busy machine may take a while to store them)."""
    store = collector._store  # the store the collector writes
    assert store is not None

    def text() -> list[str]:
        lines = render_text(assemble(store.documents(trace_id)), width=120).splitlines()
        return lines[1:]  # the header counts documents, which differ by design

    def complete() -> bool:
        shown = "\n".join(text())
        return all(name in shown for name in ("Init", "load config", "work", "flaky"))

    assert wait_until(complete, timeout=30.0)
    return text()


@pytest.mark.parametrize("backend", ["xray", "otel"])
def test_t1s_datagrams_are_stored_as_the_same_trace(
    backend: str,
    collectors: tuple[Collector, Collector],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    xray, otlp = collectors
    monkeypatch.setenv("AWS_XRAY_DAEMON_ADDRESS", otlp.address)
    tracing.configure(backend=backend, exporter="otlp-udp")
    runtime = get_runtime()
    assert runtime is not None
    runtime.emitter = Both(UDPEmitter(xray.address), runtime.emitter)
    root = _run(monkeypatch)
    shown = _rendered(otlp, root)
    assert shown == _rendered(xray, root)
    assert any("Init" in line for line in shown)
    assert any("flaky" in line and "FAULT" in line for line in shown)
    assert otlp.stats["garbage"] == 0


def test_otlp_http_is_stored_as_the_same_trace(
    collectors: tuple[Collector, Collector], monkeypatch: pytest.MonkeyPatch
) -> None:
    xray, otlp = collectors
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://{otlp.otlp_http_address}")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_COMPRESSION", "gzip")
    tracing.configure(backend="otel", exporter="otlp")
    runtime = get_runtime()
    assert runtime is not None
    assert isinstance(runtime.emitter, OTLPHTTPEmitter)
    runtime.emitter = Both(UDPEmitter(xray.address), runtime.emitter)
    root = _run(monkeypatch)
    assert _rendered(otlp, root) == _rendered(xray, root)


def test_unsampled_and_garbage_otlp_is_counted_never_stored(
    collectors: tuple[Collector, Collector],
) -> None:
    _, otlp = collectors
    trace = bytes.fromhex(new_trace_id()[2:].replace("-", ""))
    span = span_message(trace, bytes(range(1, 9)), None, "unsampled", 2, 1, 2, flags=0x100)
    body = Request(resource({"service.name": "svc"}), "tracing").encode([span])
    sender = RawSender(otlp.address)
    try:
        sender.send(
            HEADER + b"T1U" + base64.b64encode(body),
            HEADER + b"T1S" + b"!!not base64!!",
            HEADER + b"T1S" + base64.b64encode(b"\xff\xff\xff garbage"),
            b"T1S" + base64.b64encode(body),  # no header line
        )
        assert wait_until(lambda: otlp.stats["received"] == 4)
    finally:
        sender.close()
    assert wait_until(lambda: otlp.stats["unsampled"] == 1)
    assert otlp.stats["garbage"] == 3
    assert otlp.stats["stored"] == 0


def test_the_otlp_http_receiver_refuses_what_is_not_a_trace_request(
    collectors: tuple[Collector, Collector],
) -> None:
    _, otlp = collectors
    url = f"http://{otlp.otlp_http_address}/v1/traces"

    def post(body: bytes, headers: dict[str, str] | None = None, path: str = "") -> int:
        request = urllib.request.Request(
            url + path, data=body, headers=headers or {}, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return int(response.status)
        except urllib.error.HTTPError as error:
            return int(error.code)

    assert post(b"\xff\xfe garbage") == 400
    assert post(gzip.compress(b"\xff garbage"), {"Content-Encoding": "gzip"}) == 400
    assert post(b"", path="/../other") == 404
    assert post(b"") == 200  # an empty request: valid, nothing in it
    assert otlp.stats["garbage"] == 2
