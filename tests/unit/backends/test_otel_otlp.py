"""X-Ray documents -> OTel spans, for exporter="otlp"."""

from __future__ import annotations

from opentelemetry.sdk.resources import Resource
from opentelemetry.trace import SpanKind, StatusCode

from tracing.backends.otel_otlp import documents_to_spans

TRACE = "1-6b09808b-d425d3e797ab93dd5e502a2d"


def test_documents_become_spans_with_parents_kinds_and_links() -> None:
    invocation = {
        "name": "## handler",
        "id": "00000000000000a1",
        "trace_id": TRACE,
        "parent_id": "00000000000000ff",
        "type": "subsegment",
        "start_time": 1.0,
        "end_time": 2.0,
        "annotations": {"ColdStart": True},
        "subsegments": [
            {
                "name": "sqs",
                "id": "00000000000000a2",
                "namespace": "aws",
                "start_time": 1.1,
                "end_time": 1.2,
                "aws": {"operation": "SendMessage", "region": "us-east-1"},
                "fault": True,
            }
        ],
    }
    consumer = {
        "name": "worker",
        "id": "00000000000000b1",
        "trace_id": TRACE,
        "parent_id": "00000000000000a2",
        "start_time": 3.0,
        "end_time": 4.0,
        "annotations": {"MessageId": "m-1"},
    }
    links = {"00000000000000b1": [(TRACE, "00000000000000c1")]}
    spans = documents_to_spans([invocation, consumer], Resource.create({}), links)
    by_name = {span.name: span for span in spans}
    handler, call, worker = by_name["## handler"], by_name["sqs"], by_name["worker"]
    assert handler.parent is not None
    assert handler.parent.is_remote
    assert handler.parent.span_id == 0xFF
    assert handler.kind is SpanKind.INTERNAL
    assert handler.attributes is not None
    assert handler.attributes["ColdStart"] is True
    assert call.parent is not None
    assert call.parent.span_id == 0xA1
    assert call.kind is SpanKind.CLIENT
    assert call.status.status_code is StatusCode.ERROR
    assert call.attributes is not None
    assert call.attributes["rpc.method"] == "SendMessage"
    assert worker.kind is SpanKind.CONSUMER
    assert [link.context.span_id for link in worker.links] == [0xC1]
    assert links == {}  # consumed
    assert f"{worker.context.trace_id:032x}" == "6b09808bd425d3e797ab93dd5e502a2d"
    assert worker.start_time == 3_000_000_000
