"""Beside a tracer provider that exports by itself, in process (the real OTel SDK).

The ADOT layer itself is exercised through awslambdaric in
``tests/integration/coexistence``; here, the rules with plain SDK exporters.
"""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import tracing
from tracing import testing
from tracing._header import new_id, new_trace_id
from tracing.exporters.provider import ExportGate, sends_to_xray

pytestmark = pytest.mark.usefixtures("in_lambda")


def _invoke(monkeypatch: pytest.MonkeyPatch, fn: Any) -> str:
    root = new_trace_id()
    monkeypatch.setenv("_X_AMZN_TRACE_ID", f"Root={root};Parent={new_id()};Sampled=1")
    fn({}, testing.FakeContext())
    return root


def _provider() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def test_an_exporter_to_elsewhere_keeps_every_span(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, exporter = _provider()
    tracing.configure(backend="otel", tracer_provider=provider)
    tracer = provider.get_tracer("user")

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracer.start_as_current_span("user work"):
            pass

    _invoke(monkeypatch, handler)
    invocation = daemon.wait_for(2)[-1]
    assert [c["name"] for c in invocation["subsegments"]] == ["user work"]
    # Not an X-Ray exporter: not gated, it still gets the user's spans.
    assert [s.name for s in exporter.get_finished_spans()] == ["user work"]
    assert not sends_to_xray(SimpleSpanProcessor(exporter))


def test_provider_exporter_gets_the_whole_tree_once(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, exporter = _provider()
    tracing.configure(backend="otel", tracer_provider=provider, exporter="provider")
    tracer = provider.get_tracer("user")
    with tracer.start_as_current_span("user init"):
        pass

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracing.span("ours"), tracer.start_as_current_span("user work") as span:
            span.add_event("priced", {"total": 3})

    root = _invoke(monkeypatch, handler)
    assert daemon.sync() == []  # the library's own exporter sends nothing
    spans = exporter.get_finished_spans()
    assert sorted(s.name for s in spans) == ["## handler", "Init", "ours", "user init", "user work"]
    assert {f"{s.context.trace_id:032x}" for s in spans} == {root[2:10] + root[11:]}
    by_name = {s.name: s for s in spans}
    assert by_name["user init"].parent.span_id == by_name["Init"].context.span_id
    assert by_name["user work"].parent.span_id == by_name["ours"].context.span_id
    [event] = by_name["user work"].events
    assert (event.name, dict(event.attributes or {})) == ("priced", {"total": 3})
    assert by_name["## handler"].resource is provider.resource
    processors = provider._active_span_processor._span_processors
    assert any(isinstance(p, ExportGate) for p in processors)


def test_provider_exporter_needs_the_otel_backend() -> None:
    with pytest.raises(ValueError, match="backend='otel'"):
        tracing.configure(exporter="provider")


@pytest.mark.parametrize("variant", ["xray", "xray-lambda"])
def test_the_applications_xray_propagator_keeps_lineage(
    monkeypatch: pytest.MonkeyPatch, daemon: testing.DaemonListener, variant: str
) -> None:
    from opentelemetry import propagate
    from opentelemetry.propagators.aws.aws_xray_propagator import (
        AwsXRayLambdaPropagator,
        AwsXRayPropagator,
    )
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    aws = AwsXRayPropagator() if variant == "xray" else AwsXRayLambdaPropagator()
    monkeypatch.setattr(
        propagate,
        "_HTTP_TEXT_FORMAT",
        CompositePropagator([aws, TraceContextTextMapPropagator()]),
    )
    provider, _ = _provider()
    tracing.configure(backend="otel", tracer_provider=provider)
    carrier: dict[str, str] = {}

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        propagate.inject(carrier)

    root = new_trace_id()
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", f"Root={root};Parent={new_id()};Sampled=1;Lineage=a87bd80c:1"
    )
    handler({}, testing.FakeContext())
    assert carrier["X-Amzn-Trace-Id"].startswith(f"Root={root};Parent=")
    assert carrier["X-Amzn-Trace-Id"].endswith(";Sampled=1;Lineage=a87bd80c:1")
    assert "traceparent" in carrier  # the rest of the composite is kept


def test_provider_exporter_gets_each_span_under_its_own_scope_with_its_attributes(
    daemon: testing.DaemonListener, monkeypatch: pytest.MonkeyPatch
) -> None:
    provider, exporter = _provider()
    tracing.configure(backend="otel", tracer_provider=provider, exporter="provider")
    tracer = provider.get_tracer("my.lib", "9.9", "https://opentelemetry.io/schemas/1.21.0")
    attributes = {"payload": b"\x00\xff", "limits": {"cpu": 2, "tags": ("a", "b")}, "n": 404}

    @tracing.handler
    def handler(event: Any, context: Any) -> None:
        with tracer.start_as_current_span("user work", attributes=attributes) as span:
            span.add_event("priced", {"raw": b"\x01"})

    _invoke(monkeypatch, handler)
    by_name = {s.name: s for s in exporter.get_finished_spans()}
    scope = by_name["user work"].instrumentation_scope
    assert (scope.name, scope.version, scope.schema_url) == (
        "my.lib",
        "9.9",
        "https://opentelemetry.io/schemas/1.21.0",
    )
    assert by_name["## handler"].instrumentation_scope.name == "tracing"
    assert dict(by_name["user work"].attributes or {}) == attributes
    assert dict(by_name["user work"].events[0].attributes or {}) == {"raw": b"\x01"}
