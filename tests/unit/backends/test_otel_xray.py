"""The OTel span -> X-Ray entity mapping, and the xray-udp SpanExporter."""

from __future__ import annotations

from typing import Any

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, Status, StatusCode

from tracing import testing
from tracing.backends.otel_udp_exporter import XRayUDPSpanExporter
from tracing.backends.otel_xray import ANNOTATIONS_ATTRIBUTE, span_documents, span_entity


@pytest.fixture
def spans() -> tuple[Any, InMemorySpanExporter]:
    from opentelemetry.sdk.extension.aws.trace import AwsXRayIdGenerator

    memory = InMemorySpanExporter()
    provider = TracerProvider(
        id_generator=AwsXRayIdGenerator(), resource=Resource.create({"service.name": "orders"})
    )
    provider.add_span_processor(SimpleSpanProcessor(memory))
    return provider.get_tracer("test"), memory


def test_aws_call_becomes_an_aws_subsegment(spans: tuple[Any, InMemorySpanExporter]) -> None:
    tracer, memory = spans
    attributes = {
        "rpc.system": "aws-api",
        "rpc.service": "DynamoDB",
        "rpc.method": "PutItem",
        "aws.region": "eu-west-1",
        "aws.request_id": "R1",
        "aws.dynamodb.table_names": ("orders",),
        "http.status_code": 200,
    }
    with tracer.start_as_current_span(
        "DynamoDB.PutItem", kind=SpanKind.CLIENT, attributes=attributes
    ):
        pass
    entity = span_entity(memory.get_finished_spans()[0])
    assert entity["name"] == "DynamoDB"
    assert entity["namespace"] == "aws"
    assert entity["aws"] == {
        "operation": "PutItem",
        "region": "eu-west-1",
        "request_id": "R1",
        "table_name": "orders",
    }
    assert entity["http"] == {"response": {"status": 200}}
    assert "fault" not in entity
    assert entity["metadata"] == {"default": {"aws.dynamodb.table_names": ["orders"]}}


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        (404, {"error": True}),
        (429, {"error": True, "throttle": True}),
        (503, {"fault": True}),
        (None, {"fault": True}),
    ],
)
def test_error_status_maps_to_fault_error_throttle(
    spans: tuple[Any, InMemorySpanExporter], status: int | None, expected: dict[str, bool]
) -> None:
    tracer, memory = spans
    with tracer.start_as_current_span("GET /x", kind=SpanKind.CLIENT) as span:
        if status is not None:
            span.set_attribute("http.status_code", status)
        span.set_status(Status(StatusCode.ERROR))
    entity = span_entity(memory.get_finished_spans()[0])
    flags = {k: entity[k] for k in ("fault", "error", "throttle") if k in entity}
    assert flags == expected
    assert entity["namespace"] == "remote"


def test_exception_event_becomes_cause(spans: tuple[Any, InMemorySpanExporter]) -> None:
    tracer, memory = spans

    def boom() -> None:
        raise KeyError("sku")

    with pytest.raises(KeyError), tracer.start_as_current_span("work"):
        boom()
    entity = span_entity(memory.get_finished_spans()[0])
    assert entity["fault"] is True
    [exception] = entity["cause"]["exceptions"]
    assert exception["type"] == "KeyError"
    assert exception["stack"][0]["label"] == "boom"


def test_listed_attributes_become_annotations(spans: tuple[Any, InMemorySpanExporter]) -> None:
    tracer, memory = spans
    attributes = {
        "sku": "book-1",
        "bad key!": 3,
        "note": "not indexed",
        "list": (1, 2),
        ANNOTATIONS_ATTRIBUTE: ("sku", "bad key!", "list"),
    }
    with tracer.start_as_current_span("work", attributes=attributes):
        pass
    entity = span_entity(memory.get_finished_spans()[0])
    assert entity["annotations"] == {"sku": "book-1", "bad_key_": 3}
    assert entity["metadata"] == {"default": {"note": "not indexed", "list": [1, 2]}}


def test_batch_nests_children_and_makes_roots_segments(
    spans: tuple[Any, InMemorySpanExporter],
) -> None:
    tracer, memory = spans
    with (
        tracer.start_as_current_span("GET /orders", kind=SpanKind.SERVER),
        tracer.start_as_current_span("load"),
    ):
        pass
    [document] = span_documents(memory.get_finished_spans())
    assert document["name"] == "orders"  # a root SERVER span is a segment named by service
    assert "type" not in document
    assert [c["name"] for c in document["subsegments"]] == ["load"]
    assert testing.check_document(document) == []


def test_exporter_sends_over_udp(spans: tuple[Any, InMemorySpanExporter]) -> None:
    tracer, memory = spans
    with (
        tracer.start_as_current_span("root", kind=SpanKind.SERVER),
        tracer.start_as_current_span("child"),
    ):
        pass
    with testing.DaemonListener() as daemon:
        exporter = XRayUDPSpanExporter(f"tcp:127.0.0.1:1 udp:{daemon.address}")
        assert exporter.export(memory.get_finished_spans()).name == "SUCCESS"
        [document] = daemon.wait_for(1)
        exporter.shutdown()
    assert [c["name"] for c in document["subsegments"]] == ["child"]
    assert testing.check_document(document) == []
